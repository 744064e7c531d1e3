"""The operator's desk (操作员工作台) in a real browser: take the next lead, record failed calls by key
and click until the ladder sends a squad, while a second operator's claim keeps the leads apart."""
from __future__ import annotations

import httpx
from sqlalchemy import text

from dispatch.identity import mask_phone
from tests.e2e.conftest import PHONE, SCREENSHOTS, WALL, login
from tests.factories import make_lead

# Sweeps every second, so a missed first call raises its alarm while the test runs.
LIVE_ENV = {"DEADLINE_SWEEP_EVERY_SECONDS": "1", "FIELD_SWEEP_EVERY_SECONDS": "1", "RECONCILE_EVERY_SECONDS": "1"}

# dispatch/policy.toml with a P1 first call due in seconds, 3 failed calls to a visit, a retry due at
# once (the desk hands the lead out again) and no district face-to-face (the visit comes from the calls).
LIVE_POLICY = """
version = 1
default_tier = "P3"

[switches]
district_face_to_face = false

[escalation]
failed_calls_to_visit = 3
no_connection_minutes = 10
no_connection_tiers = ["P0", "P1"]
offer_timeout_seconds = 60

[ladder]
failed_results = ["no_answer", "busy", "powered_off", "rejected"]
invalid_number_placed = "visit"
invalid_number_unplaced = "center"
refused_by_phone = "visit"
close_on_dissuaded = ["P1", "P2", "P3"]
already_defrauded_tier = "P0"
sms_failed_to_call = ["P3"]
sms_failed_call_within = "4h"
visit_within = "24h"
callback_after = { default = "3d", P0 = "1d" }
callback_outcomes = ["dissuaded", "already_defrauded", "refused", "not_reached"]

[alarms]
levels = ["duty_officer", "duty_commander", "center_head"]
escalate_after = { default = "5m", P0 = "2m" }

[field]
checkin_every = "15m"
backup_when_late = true

[desk]
claim_for = "3m"
call_retry_after = "1s"

[tiers.P0]
label = "urgent"
response = ["call", "visit"]
[tiers.P0.deadlines]
sign = "2m"
first_call = "5m"
on_scene = "30m"

[tiers.P1]
label = "high"
response = ["call"]
escalation = ["visit"]
[tiers.P1.deadlines]
sign = "5m"
first_call = "4s"
visit = { after = "24h", if_response = "visit" }

[tiers.P2]
label = "medium"
response = ["sms", "call"]
[tiers.P2.deadlines]
sign = "30m"
first_call = "4h"
visit = { after = "72h", if_response = "visit" }

[tiers.P3]
label = "low"
response = ["sms"]
[tiers.P3.deadlines]
sign = "2h"
sms = "1h"

[[rules]]
name = "fund_transfer_warning"
tier = "P0"
when = { warning_type = ["fund_transfer"] }

[[rules]]
name = "risk1_contact_ongoing"
tier = "P0"
when = { risk_level = [1], ongoing = true }

[[rules]]
name = "risk1"
tier = "P1"
when = { risk_level = [1] }

[[rules]]
name = "risk2_high_risk_type"
tier = "P1"
when = { risk_level = [2], fraud_type = ["fake_investment", "impersonate_authority", "fake_loan", "impersonate_customer_service"] }

[[rules]]
name = "elderly_subject"
tier = "P1"
when = { age_gte = 60 }

[[rules]]
name = "risk2"
tier = "P2"
when = { risk_level = [2] }

[[rules]]
name = "repeat_warning_7d"
tier = "P2"
when = { risk_level = [3], warned_within_7d = true }

[[rules]]
name = "risk3"
tier = "P3"
when = { risk_level = [3] }

[[rules]]
name = "district_face_to_face"
switch = "district_face_to_face"
add_response = ["visit"]
when = { tier = ["P1", "P2"], residency = ["resident", "worker", "transient"], in_jurisdiction = true }
"""

DESK_NEEDS = [("post", "/api/v1/calls/next"), ("delete", "/api/v1/leads/{}/claim"), ("get", "/api/v1/calls/queue"),
              ("post", "/api/v1/leads/{}/calls"), ("get", "/api/v1/alarms"), ("post", "/api/v1/alarms/{}/ack"),
              ("get", "/api/v1/callbacks/due"), ("post", "/api/v1/people/history")]


def push(live, source_headers, **kw) -> tuple[int, dict]:
    lead = make_lead(amount_cny=52000, **kw)  # risk 2, fake_investment: P1
    r = httpx.post(live.base + "/api/v1/leads", json=lead, headers=source_headers, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["id"], lead


def wait_ready_to_call(page, lead_id: int, calls: int) -> None:
    """The queue shows the lead's `calls` recorded calls and its retry timer run out."""
    row = f'#queue tr[data-lead="{lead_id}"][data-calls="{calls}"]'
    page.locator(row + ':not([data-next-call-at=""])').wait_for(timeout=15000)
    page.locator(row + '[data-ready="1"]').wait_for(timeout=15000)


def test_operator_takes_leads_and_three_failed_calls_send_a_squad(browser, live, watch, clean, make_user,
                                                                  source_headers, sync_engine):
    assert live.missing(*DESK_NEEDS) == []
    assert live.has("ws", "/api/v1/board/ws")
    op1, op2 = make_user("operator"), make_user("operator")
    context = browser.new_context(viewport=WALL, locale="zh-CN", accept_downloads=True)
    watch.attach(context)
    page = context.new_page()
    page.goto(live.base + "/desk")
    login(page, op1["X-Username"])
    page.locator("#live-state.connected").wait_for(timeout=10000)

    # a pushed lead reaches the call queue live; N takes it, the phone masked until asked for
    a_id, a = push(live, source_headers)
    page.locator(f'#queue tr[data-lead="{a_id}"]').wait_for(timeout=15000)
    page.keyboard.press("n")
    card = page.locator(f'#current[data-lead="{a_id}"]')
    card.wait_for(timeout=15000)
    full = a["subject"]["phone"]
    assert page.locator("#cur-phone").inner_text().strip() == mask_phone(full)
    assert full not in page.content()
    assert "52,000.00" in page.locator("#cur-amount").inner_text()
    assert card.locator(".tier.P1").count() == 1
    page.locator(f'#queue tr[data-lead="{a_id}"][data-claimed-by="{op1["X-Username"]}"]').wait_for(timeout=15000)
    page.click("#btn-reveal")
    assert page.locator("#cur-phone").inner_text().strip() == full

    # a second operator's 下一条 never gets the lead the first one holds: it gets the other one,
    # and the first desk sees that claim live
    b_id, b = push(live, source_headers)
    page.locator(f'#queue tr[data-lead="{b_id}"]').wait_for(timeout=15000)
    other = httpx.post(live.base + "/api/v1/calls/next", headers=op2, timeout=10).json()
    assert other["item"] is not None and other["item"]["id"] == b_id != a_id
    page.locator(f'#queue tr[data-lead="{b_id}"][data-claimed-by="{op2["X-Username"]}"]').wait_for(timeout=20000)
    again = httpx.post(live.base + "/api/v1/calls/next", headers=op2, timeout=10).json()
    assert again["item"]["id"] == b_id  # still their own; never the first operator's

    # the person's history and the lead's timeline beside the card
    page.locator("#history .hist-lead, #history p.muted").first.wait_for(timeout=15000)
    page.locator('#timeline li[data-kind="claimed"]').wait_for(timeout=15000)

    # three failed calls: key 4, the 无人接听 button, key 4 — taken again with the button and N in between
    page.keyboard.press("4")
    last = page.locator(f'#last[data-lead="{a_id}"]')
    last.wait_for(timeout=15000)
    assert page.locator("#current").count() == 0
    assert last.get_attribute("data-rules") == "" and last.get_attribute("data-status") == "working"
    wait_ready_to_call(page, a_id, 1)
    page.click("#btn-next")
    card.wait_for(timeout=15000)
    page.click('#results button[data-result="no_answer"]')
    page.locator(f'#last[data-lead="{a_id}"]').wait_for(timeout=15000)
    page.locator("#current").wait_for(state="detached", timeout=15000)
    wait_ready_to_call(page, a_id, 2)
    page.keyboard.press("N")
    card.wait_for(timeout=15000)
    page.keyboard.press("4")

    # the desk shows the escalation, the lead leaves the call queue, the timeline says why
    page.locator(f'#last[data-lead="{a_id}"] li[data-rule="failed_calls"]').wait_for(timeout=15000)
    assert "见面劝阻" in page.locator("#last").inner_text()
    page.locator(f'#queue tr[data-lead="{a_id}"]').wait_for(state="detached", timeout=15000)
    page.locator('#timeline li[data-kind="escalated"][data-rule="failed_calls"]').wait_for(timeout=15000)
    detail = httpx.get(f"{live.base}/api/v1/leads/{a_id}", headers=op1, timeout=10).json()
    escalations = [e for e in detail["timeline"] if e["kind"] == "escalated"]
    assert [e["data"]["rule"] for e in escalations] == ["failed_calls"] and escalations[0]["data"]["to"] == "visit"
    assert [e["data"]["result"] for e in detail["timeline"] if e["kind"] == "call"] == ["no_answer"] * 3
    assert {e["actor"] for e in detail["timeline"] if e["kind"] == "call"} == {f'user:{op1["X-Username"]}'}

    # the lead nobody called missed its first call: an alarm on the banner, acknowledged with one click
    alarm = page.locator(f'#alarms .alarm[data-lead="{b_id}"]').first
    alarm.wait_for(timeout=20000)
    alarm_id = int(alarm.get_attribute("data-alarm"))
    page.screenshot(path=str(SCREENSHOTS / "desk-1920x1080.png"))
    alarm.locator("button.ack").click()
    page.locator(f'#alarms .alarm[data-alarm="{alarm_id}"]').wait_for(state="detached", timeout=15000)
    with sync_engine.connect() as conn:
        acked_by = conn.execute(text("SELECT acked_by FROM alarm WHERE id = :a"), {"a": alarm_id}).scalar()
    assert acked_by == op1["X-Username"]

    # 导出CSV: the queue as shown, phones masked
    with page.expect_download() as dl:
        page.click("#btn-csv")
    csv = open(dl.value.path(), encoding="utf-8-sig").read()
    assert mask_phone(b["subject"]["phone"]) in csv and b["subject"]["phone"] not in csv
    assert f",{b_id}," in csv and op2["X-Username"] in csv and f",{a_id}," not in csv

    # a phone-sized window: the same desk, stacked
    small = context.new_page()
    small.set_viewport_size(PHONE)
    small.goto(live.base + "/desk")
    login(small, op1["X-Username"])
    small.locator(f'#queue tr[data-lead="{b_id}"]').wait_for(timeout=15000)
    small.locator("#btn-next").wait_for()
    small.screenshot(path=str(SCREENSHOTS / "desk-390x844.png"), full_page=True)
    watch.check()
    context.close()


def test_operator_dissuades_by_key_and_records_the_callback_when_due(browser, live, watch, clean, make_user,
                                                                     source_headers, sync_engine):
    assert live.missing(*DESK_NEEDS) == []
    op = make_user("operator")
    context = browser.new_context(viewport=WALL, locale="zh-CN")
    watch.attach(context)
    page = context.new_page()
    page.goto(live.base + "/desk")
    login(page, op["X-Username"])
    page.locator("#live-state.connected").wait_for(timeout=10000)
    page.keyboard.press("n")
    page.locator("#next-empty").wait_for(timeout=15000)  # nobody waiting for a call

    lead_id, _ = push(live, source_headers)
    page.locator(f'#queue tr[data-lead="{lead_id}"]').wait_for(timeout=15000)
    page.keyboard.press("n")
    page.locator(f'#current[data-lead="{lead_id}"]').wait_for(timeout=15000)
    page.fill("#call-note", "已停止转账")
    page.locator("#call-note").blur()  # out of the note field: keys act again
    page.keyboard.press("1")  # 接通-已劝阻: a P1 with no visit required closes
    page.locator(f'#last[data-lead="{lead_id}"] li[data-rule="dissuaded_by_phone"]').wait_for(timeout=15000)
    assert page.locator("#last-status").inner_text() == "已结案"
    with sync_engine.begin() as conn:
        call = conn.execute(text("SELECT result, outcome, note FROM call_attempt WHERE lead_id = :l"),
                            {"l": lead_id}).one()
        assert tuple(call) == ("connected", "dissuaded", "已停止转账")
        # the callback the close scheduled (days ahead) falls due now
        n = conn.execute(text("UPDATE callback SET due_at = now() - interval '1 minute' WHERE lead_id = :l "
                              "AND done_at IS NULL"), {"l": lead_id}).rowcount
    assert n == 1

    page.reload()  # the token stays with the tab
    item = page.locator(f'#callbacks li[data-lead="{lead_id}"]')
    item.wait_for(timeout=15000)
    item.locator("button", has_text="安全").click()
    item.wait_for(state="detached", timeout=15000)
    with sync_engine.connect() as conn:
        cb = conn.execute(text("SELECT result, actor, done_at FROM callback WHERE lead_id = :l"), {"l": lead_id}).one()
    assert cb.result == "safe" and cb.actor.endswith(op["X-Username"]) and cb.done_at is not None
    watch.check()
    context.close()
