"""The command-center screen and the field page in a real browser, as people use them."""
from __future__ import annotations

import re

import httpx
from sqlalchemy import text

from dispatch.identity import mask_phone
from tests.e2e.conftest import PHONE, SCREENSHOTS, WALL, login
from tests.factories import INSIDE, make_lead

MASKED = re.compile(r"^1\d{2}\*{4}\d{4}$")

# The endpoints the full flow needs (center actions, matching, offers); each one missing is a failure.
FLOW_NEEDS = [("get", "/api/v1/leads/{}/candidates"), ("post", "/api/v1/leads/{}/assign"),
              ("get", "/api/v1/assignments"), ("post", "/api/v1/assignments/{}/accept"),
              ("post", "/api/v1/assignments/{}/arrive"), ("post", "/api/v1/assignments/{}/complete")]


def push(live, source_headers, **kw) -> tuple[int, dict]:
    lead = make_lead(**kw)
    r = httpx.post(live.base + "/api/v1/leads", json=lead, headers=source_headers, timeout=10)
    assert r.status_code == 202, r.text
    return r.json()["id"], lead


def beat_count(live, headers) -> int:
    return len(httpx.get(live.base + "/api/v1/geo/beats", headers=headers).json()["features"])


def test_screen_draws_the_district_and_shows_a_pushed_lead_masked_within_2s(browser, live, watch, clean,
                                                                              make_user, source_headers, commander):
    context = browser.new_context(viewport=WALL, locale="zh-CN")
    watch.attach(context)
    page = context.new_page()
    page.goto(live.base + "/")
    login(page, commander["X-Username"])
    # every beat of the district is a shape on the map
    page.wait_for_function("document.getElementById('map') && document.getElementById('map').dataset.beats")
    assert page.locator("#map path.beat").count() == beat_count(live, commander) > 0

    # live through the board socket
    assert live.has("ws", "/api/v1/board/ws")
    page.locator("#live-state.connected").wait_for(timeout=5000)

    lead_id, lead = push(live, source_headers)
    row = page.locator(f'#queue tr[data-lead="{lead_id}"]')
    row.wait_for(timeout=2000)  # within 2 s of the push
    phone = row.locator("td.phone").inner_text().strip()
    assert MASKED.match(phone) and phone == mask_phone(lead["subject"]["phone"])
    assert lead["subject"]["phone"] not in page.content()
    row.click()
    page.locator("#detail").wait_for()
    page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "screen-1920x1080.png"))

    # the same screen on a phone-sized window still shows the queue and the map
    small = context.new_page()
    small.set_viewport_size(PHONE)
    small.goto(live.base + "/")
    login(small, commander["X-Username"])  # the token is kept per tab (sessionStorage)
    small.locator(f'#queue tr[data-lead="{lead_id}"]').wait_for(timeout=5000)
    assert small.locator("#map path.beat").count() == beat_count(live, commander)
    small.screenshot(path=str(SCREENSHOTS / "screen-390x844.png"), full_page=True)
    watch.check()
    context.close()


def test_field_page_logs_in_and_reports_duty_and_location(browser, live, watch, make_user, sync_engine):
    team = INSIDE["team"]
    member = make_user("police", team=team)
    # Off duty to begin with, whatever an earlier test left: the page reads the squad's stored status
    # after login, and a switch turned on by that read under the click would be turned off by it.
    with sync_engine.begin() as conn:
        conn.execute(text("UPDATE team SET status = 'off_duty' WHERE code = :c"), {"c": team})
    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    watch.attach(context)
    page = context.new_page()
    page.goto(live.base + "/m/")
    login(page, member["X-Username"])
    page.locator("#live-state.connected").wait_for(timeout=15000)  # started: duty read, socket open
    page.check("#duty")
    page.click("summary")
    page.fill("#man-lon", str(INSIDE["lon"]))
    page.fill("#man-lat", str(INSIDE["lat"]))
    page.click("#man-send")
    page.locator(".loc", has_text=f"{INSIDE['lon']:.5f}").wait_for()
    page.wait_for_timeout(500)
    with sync_engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM team WHERE code = :c"), {"c": team}).scalar()
    assert status == "on_duty"
    page.screenshot(path=str(SCREENSHOTS / "field-390x844.png"), full_page=True)
    watch.check()
    context.close()


def test_commander_assigns_from_suggestions_and_the_squad_completes_on_the_phone(
        browser, live, watch, clean, make_user, source_headers, commander, sync_engine):
    assert live.missing(*FLOW_NEEDS) == []
    assert live.has("ws", "/api/v1/ws")
    wall = browser.new_context(viewport=WALL, locale="zh-CN")
    watch.attach(wall)
    screen = wall.new_page()
    screen.goto(live.base + "/")
    login(screen, commander["X-Username"])
    lead_id, _ = push(live, source_headers, risk_level=1)
    screen.locator(f'#queue tr[data-lead="{lead_id}"]').click(timeout=15000)
    kpi_before = screen.locator("#kpis .tiles").inner_text()

    # the commander signs the lead (签收) and raises it to P0 by hand (改级), each written down once
    screen.locator("#btn-sign:not([disabled])").click(timeout=15000)
    screen.locator("#btn-sign[disabled]").wait_for(timeout=15000)
    screen.click("#btn-tier")
    screen.select_option("#dlg-tier select", "P0")
    screen.fill("#dlg-tier input", "家属来电：正在转账")
    screen.click("#dlg-tier button[type=submit]")
    screen.locator("#dlg-tier").wait_for(state="detached", timeout=15000)
    screen.locator("#detail .what .tier.P0").wait_for(timeout=15000)
    with sync_engine.connect() as conn:
        lead = conn.execute(text("SELECT signed_by, tier FROM lead WHERE id = :l"), {"l": lead_id}).one()
        kinds = conn.execute(text("SELECT kind, data FROM lead_event WHERE lead_id = :l AND kind IN "
                                  "('signed', 'tier_overridden')"), {"l": lead_id}).all()
    assert lead.signed_by == commander["X-Username"] and lead.tier == "P0"
    assert sorted(k for k, _ in kinds) == ["signed", "tier_overridden"]
    assert next(d for k, d in kinds if k == "tier_overridden")["reason"] == "家属来电：正在转账"

    # the assign dialog suggests squads; one click picks the best (a second one if it warns)
    screen.click("#btn-assign")
    first = screen.locator("#dlg-assign .pick").first
    first.wait_for(timeout=15000)
    team = first.get_attribute("data-team")
    first.click()
    if screen.locator("#btn-assign-anyway").count():
        screen.click("#btn-assign-anyway")
    screen.locator("#dlg-assign").wait_for(state="detached", timeout=15000)
    with sync_engine.connect() as conn:
        offered = conn.execute(text("SELECT team_code FROM assignment WHERE lead_id = :l"), {"l": lead_id}).scalars().all()
    assert team in offered

    # a member of that squad, on a phone, accepts, arrives (while offline: kept, sent on return) and completes
    phone_ctx = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    watch.attach(phone_ctx)
    field = phone_ctx.new_page()
    field.goto(live.base + "/m/")
    login(field, make_user("police", team=team)["X-Username"])
    field.click("#btn-accept", timeout=15000)
    field.locator("#btn-arrive:not([disabled])").wait_for(timeout=15000)
    # the small map: the district's beats under the markers, the lead's own beat outlined
    field.wait_for_function("document.getElementById('minimap') && document.getElementById('minimap').dataset.beats")
    assert field.locator("#minimap path.beat").count() == int(field.locator("#minimap").get_attribute("data-beats"))
    field.locator("#minimap path.beat.own").wait_for(timeout=15000)
    phone_ctx.set_offline(True)
    field.click("#btn-arrive")
    field.locator("#outbox").wait_for()
    field.screenshot(path=str(SCREENSHOTS / "field-offline-390x844.png"), full_page=True)
    phone_ctx.set_offline(False)
    field.evaluate("window.dispatchEvent(new Event('online'))")
    field.locator("#outbox").wait_for(state="detached", timeout=15000)
    field.locator("#complete-form").wait_for(timeout=15000)
    for box in ("look.call_sms_logs", "look.fraud_apps", "ask.who_asked", "protect.family_informed"):
        field.check(f'input[name="{box}"]')
    field.select_option("#outcome", "dissuaded")
    field.click("#btn-complete")
    field.locator("#current").wait_for(state="detached", timeout=15000)
    with sync_engine.connect() as conn:
        status = conn.execute(text("SELECT status FROM assignment WHERE lead_id = :l AND team_code = :t"),
                              {"l": lead_id, "t": team}).scalar()
        arrivals = conn.execute(text("SELECT count(*) FROM lead_event WHERE lead_id = :l AND kind ILIKE '%arriv%'"),
                                {"l": lead_id}).scalar()
    assert status == "completed" and arrivals == 1  # the arrive sent from the outbox applied once
    with sync_engine.connect() as conn:
        checklist = conn.execute(text("SELECT checklist FROM assignment WHERE lead_id = :l AND team_code = :t"),
                                 {"l": lead_id, "t": team}).scalar()
    assert checklist["look"] == {"call_sms_logs": True, "chat_apps": False, "fraud_apps": True, "large_transfers": False}
    assert checklist["ask"]["who_asked"] is True and checklist["protect"]["family_informed"] is True

    # the screen shows the outcome, and the KPI panel moved
    detail = httpx.get(f"{live.base}/api/v1/leads/{lead_id}", headers=commander).json()
    screen.locator("#detail .outcome").wait_for(timeout=15000)
    assert detail["outcome"] and screen.locator("#detail .outcome").inner_text().strip() != ""
    screen.wait_for_function("b => document.querySelector('#kpis .tiles').innerText !== b", arg=kpi_before,
                             timeout=15000)
    screen.screenshot(path=str(SCREENSHOTS / "screen-after-visit-1920x1080.png"))
    watch.check()
    wall.close()
    phone_ctx.close()
