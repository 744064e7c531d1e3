"""The commander's wall (指挥大屏) on the shift's queue and alarms, in a real browser: a missed sign
deadline's alarm on the banner, acknowledged there; another left alone climbs a level; thousands of
open leads with every P0 in view."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
from sqlalchemy import text

from tests.e2e.conftest import PHONE, SCREENSHOTS, WALL, login
from tests.factories import make_lead

MASKED = re.compile(r"^1\d{2}\*{4}\d{4}$")
NEEDS = [("get", "/api/v1/queue"), ("get", "/api/v1/alarms"), ("post", "/api/v1/alarms/{}/ack"),
         ("post", "/api/v1/leads/batch")]


def _policy() -> str:
    """The shipped policy with a P0 sign deadline of 3 s and alarms climbing after 3 s, two levels."""
    policy = (Path(__file__).resolve().parents[2] / "dispatch" / "policy.toml").read_text(encoding="utf-8")
    for pattern, repl in ((r'(\[tiers\.P0\.deadlines\]\nsign = )"[^"]+"', r'\1"3s"'),
                          (r'(?m)^escalate_after = .*$', 'escalate_after = "3s"'),
                          (r'(?m)^levels = .*$', 'levels = ["duty_officer", "duty_commander"]')):
        policy, n = re.subn(pattern, repl, policy)
        assert n == 1, pattern
    return policy


# Two levels: an alarm nobody acknowledges stops at 值班长, so the screen can be caught showing it.
LIVE_POLICY = _policy()
LIVE_ENV = {"DEADLINE_SWEEP_EVERY_SECONDS": "1", "FIELD_SWEEP_EVERY_SECONDS": "1", "RECONCILE_EVERY_SECONDS": "1"}


def push(live, source_headers, **kw) -> int:
    r = httpx.post(live.base + "/api/v1/leads", json=make_lead(**kw), headers=source_headers, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["id"]


def open_wall(browser, live, watch, user: dict, viewport=WALL):
    context = browser.new_context(viewport=viewport, locale="zh-CN")
    watch.attach(context)
    page = context.new_page()
    page.goto(live.base + "/")
    login(page, user["X-Username"])
    page.locator("#live-state.connected").wait_for(timeout=10000)
    return context, page


def alarms_of(live, headers) -> list[dict]:
    r = httpx.get(live.base + "/api/v1/alarms", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_missed_sign_alarm_is_acknowledged_on_the_wall_and_an_unacknowledged_one_climbs(
        browser, live, watch, clean, source_headers, commander, sync_engine):
    assert live.missing(*NEEDS) == []
    context, page = open_wall(browser, live, watch, commander)
    first = push(live, source_headers, warning_type="fund_transfer", risk_level=1)
    second = push(live, source_headers, warning_type="fund_transfer", risk_level=1)

    # both P0s are in the queue, on the sign step (待签收), pinned above the rest
    for lead_id in (first, second):
        row = page.locator(f'#queue .urgent tr[data-lead="{lead_id}"][data-tier="P0"]')
        row.wait_for(timeout=15000)
        assert MASKED.match(row.locator("td.phone").inner_text().strip())

    # 3 s later the sign deadline is missed: the alarm is on the banner (level 1 or already higher)
    banner = page.locator(f'#alarms .alarm[data-lead="{first}"][data-kind="sign"]')
    banner.wait_for(timeout=30000)
    assert "签收超时" in banner.inner_text()
    assert banner.locator(".level").inner_text().strip() in ("值班员", "值班长")
    alarm_id = int(banner.get_attribute("data-alarm"))
    # the row's timer says so too: red, 超时
    timer = page.locator(f'#queue tr[data-lead="{first}"] td.timer.overdue')
    timer.wait_for(timeout=10000)
    assert timer.inner_text().startswith("超时")

    banner.locator("button.ack").click()
    banner.wait_for(state="detached", timeout=10000)
    assert alarm_id not in [a["id"] for a in alarms_of(live, commander)]
    with sync_engine.connect() as conn:
        acked = conn.execute(text("SELECT acked_by, acked_at FROM alarm WHERE id = :a"), {"a": alarm_id}).one()
    assert acked.acked_by == commander["X-Username"] and acked.acked_at is not None
    again = httpx.post(f"{live.base}/api/v1/alarms/{alarm_id}/ack", headers=commander, timeout=10)
    assert again.status_code == 409

    # the second lead's alarm, left alone, climbs to level 2: 值班长 on the wall, level 2 in the API
    climbed = page.locator(f'#alarms .alarm[data-lead="{second}"][data-kind="sign"][data-level="2"]')
    climbed.wait_for(timeout=30000)
    assert climbed.locator(".level").inner_text().strip() == "值班长"
    other = next(a for a in alarms_of(live, commander) if a["lead_id"] == second and a["kind"] == "sign")
    assert other["level"] == 2 and other["level_name"] == "duty_commander"
    assert page.locator(f'#alarms .alarm[data-alarm="{alarm_id}"]').count() == 0  # the acked one stays gone
    page.screenshot(path=str(SCREENSHOTS / "wall-alarms-1920x1080.png"))
    watch.check()
    context.close()


def _batch(live, source_headers, leads: list[dict]) -> list[int]:
    ids = []
    for i in range(0, len(leads), 1000):
        r = httpx.post(live.base + "/api/v1/leads/batch", json={"leads": leads[i:i + 1000]}, headers=source_headers,
                       timeout=120)
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert all(x["status"] == "accepted" for x in results), [x for x in results if x["status"] != "accepted"][:3]
        ids += [x["id"] for x in results]
    return ids


P0_AT = (20, 120, 240, 360, 480)


def test_two_thousand_open_leads_every_p0_in_view(browser, live, watch, clean, source_headers, commander):
    assert live.missing(*NEEDS) == []
    leads = [make_lead(risk_level=3, warning_type="fraud_sms", subject={"id_number": None}) for _ in range(2000)]
    # a few P0 among them (early in the first batch: the workers tier in arrival order)
    for i in P0_AT:
        leads[i] = make_lead(warning_type="fund_transfer", risk_level=1, subject={"id_number": None})
    ids = _batch(live, source_headers, leads)
    p0_ids = {ids[i] for i in P0_AT}
    context, page = open_wall(browser, live, watch, commander)

    # the wall has every open lead, and the P0s as soon as the workers tiered them (the rest may still be 未分级)
    page.wait_for_function("""() => {
        const t = document.getElementById('queue-total');
        return t && t.dataset.total === '2000' && document.querySelectorAll('#queue tr[data-tier="P0"]').length === 5; }""",
                           timeout=40000)
    answer = httpx.get(live.base + "/api/v1/queue", headers=commander, timeout=30).json()
    assert answer["total"] == 2000 and answer["by_tier"]["P0"] == len(p0_ids) == 5
    first_page = answer["items"]  # most urgent first: the P0s lead the first page, ahead of P3 and untiered
    assert {it["id"] for it in first_page[:5]} == p0_ids and all(it["tier"] == "P0" for it in first_page[:5])

    # every open P0 is drawn, and visible without scrolling; the P3s are not all in the DOM (virtual list)
    shown = page.locator('#queue tr[data-tier="P0"]')
    assert shown.count() == answer["by_tier"]["P0"]
    for lead_id in p0_ids:
        assert page.locator(f'#queue tr[data-lead="{lead_id}"]').is_visible()
    assert int(page.locator('#by-tier [data-tier="P0"]').get_attribute("data-n")) == 5
    assert page.locator("#queue tr[data-lead]").count() < 300
    # the step column speaks Chinese, and a tier filter narrows the list
    assert page.locator(f'#queue tr[data-lead="{min(p0_ids)}"] td.step').inner_text().strip() in (
        "待签收", "首次呼叫", "已派单", "待派单", "中心研判", "处理中")
    page.select_option("#f-tier", "P0")
    page.wait_for_function("document.getElementById('queue-total').dataset.total === '5'", timeout=15000)
    assert page.locator("#queue tr[data-lead]").count() == 5
    page.select_option("#f-tier", "")
    page.wait_for_function("document.getElementById('queue-total').dataset.total === '2000'", timeout=15000)
    page.screenshot(path=str(SCREENSHOTS / "wall-1920x1080.png"))

    # the export is the current view, masked
    with page.expect_download() as dl:
        page.click("#export-csv")
    csv = Path(dl.value.path()).read_text(encoding="utf-8-sig").splitlines()
    assert len(csv) == 2001 and csv[0].startswith("编号,级别,环节")
    assert all(lead["subject"]["phone"] not in "\n".join(csv) for lead in leads[:50])

    small = context.new_page()
    small.set_viewport_size(PHONE)
    small.goto(live.base + "/")
    login(small, commander["X-Username"])
    small.locator(f'#queue tr[data-lead="{min(p0_ids)}"]').wait_for(timeout=15000)
    small.screenshot(path=str(SCREENSHOTS / "wall-390x844.png"))
    watch.check()
    context.close()


def test_commander_panels_rejections_person_history_report_and_replay(
        browser, live, watch, clean, source_headers, commander, sync_engine):
    lead = make_lead(risk_level=2, fraud_type="other")  # P2 by the policy (rule risk2)
    r = httpx.post(live.base + "/api/v1/leads", json=lead, headers=source_headers, timeout=10)
    assert r.status_code == 202, r.text
    lead_id = r.json()["id"]
    bad = make_lead(risk_level=7)
    r = httpx.post(live.base + "/api/v1/leads", json=bad, headers=source_headers, timeout=10)
    assert r.status_code == 422
    context, page = open_wall(browser, live, watch, commander)
    assert page.locator("#link-desk").get_attribute("href") == "/desk"

    # 退回记录: what the source sent that was refused, by field
    page.click("#tab-rejections")
    row = page.locator("#panel-rejections tr", has_text=bad["source_id"])
    row.wait_for(timeout=10000)
    assert "risk_level" in row.inner_text()
    assert "risk_level" in page.locator("#panel-rejections .by-field").inner_text()

    # 个人历史: by phone; the answer is masked on the screen and the read is written down
    page.click("#tab-people")
    with sync_engine.connect() as conn:
        before = conn.execute(text("SELECT count(*) FROM access_log")).scalar()
    page.fill("#person-q", lead["subject"]["phone"])
    page.click("#person-form button[type=submit]")
    page.locator(f'#person-result tr[data-lead="{lead_id}"]').wait_for(timeout=10000)
    assert lead["subject"]["phone"] not in page.locator("#person-result").inner_text()
    with sync_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM access_log")).scalar() > before

    # 月通报: the ranking of the month, and the workbook downloads
    page.click("#tab-report")
    page.locator("#ranking").wait_for(timeout=10000)
    with page.expect_download() as dl:
        page.click("#report-download")
    assert Path(dl.value.path()).read_bytes()[:2] == b"PK"  # an xlsx is a zip

    # 策略回放: a candidate policy file → what would change (once the lead is tiered)
    page.locator(f'#queue tr[data-lead="{lead_id}"][data-tier="P2"]').wait_for(timeout=15000)
    page.click("#tab-replay")
    candidate = LIVE_POLICY.replace('name = "risk2"\ntier = "P2"', 'name = "risk2"\ntier = "P1"')
    assert candidate != LIVE_POLICY
    page.set_input_files("#replay-file", files=[{"name": "candidate.toml", "mimeType": "text/plain",
                                                 "buffer": candidate.encode()}])
    page.click("#replay-run")
    page.locator("#replay-result").wait_for(timeout=20000)
    assert "P2→P1" in page.locator("#replay-result").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "wall-replay-1920x1080.png"))
    watch.check()
    context.close()
