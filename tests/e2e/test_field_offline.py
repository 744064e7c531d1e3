"""The field page in a basement: it loads with no connection (its service worker), an arrival made
offline keeps the phone's time and reaches the server once, and the squad's position follows the
phone while on duty, without a button."""
from __future__ import annotations

import json
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import httpx

from tests.e2e.conftest import PHONE, SCREENSHOTS, login
from tests.factories import INSIDE, make_lead

CST = ZoneInfo("Asia/Shanghai")


def phone(browser, **kw):
    return browser.new_context(viewport=PHONE, locale="zh-CN", timezone_id="Asia/Shanghai", is_mobile=True,
                               has_touch=True, **kw)


def offer_to(live, source_headers, commander, team: str) -> tuple[int, int]:
    """A lead pushed and, once triaged, offered by the center to `team`: (lead id, assignment id)."""
    r = httpx.post(live.base + "/api/v1/leads", json=make_lead(risk_level=1), headers=source_headers, timeout=10)
    assert r.status_code == 202, r.text
    lead_id = r.json()["id"]
    deadline = time.monotonic() + 30
    while True:  # the worker tiers the lead; until then the center cannot assign it (409)
        r = httpx.post(f"{live.base}/api/v1/leads/{lead_id}/assign", json={"team_code": team}, headers=commander,
                       timeout=10)
        if r.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert r.status_code == 200, r.text
    return lead_id, r.json()["id"]


def when(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_the_page_loads_offline_and_an_offline_arrival_keeps_the_phones_time(
        browser, live, watch, clean, make_user, source_headers, commander):
    team = INSIDE["team"]
    member = make_user("police", team=team)
    context = phone(browser)
    watch.attach(context)
    page = context.new_page()
    page.goto(live.base + "/m/")
    login(page, member["X-Username"])
    page.locator("#duty").wait_for()
    # the service worker installs and takes the page (clients.claim), its shell cached
    page.wait_for_function("navigator.serviceWorker.controller !== null", timeout=15000)

    lead_id, assignment_id = offer_to(live, source_headers, commander, team)
    page.click("#btn-accept", timeout=15000)
    page.locator("#btn-arrive:not([disabled])").wait_for(timeout=15000)
    page.locator("#outbox").wait_for(state="detached", timeout=15000)
    page.wait_for_function("id => JSON.parse(localStorage.getItem('quanzu.field.kept')).assignments"
                           ".some(a => a.id === id && a.status === 'accepted')", arg=assignment_id, timeout=15000)

    # no network: the page still loads, from the worker's cache, with the task the phone kept
    context.set_offline(True)
    reloaded = page.reload()
    assert reloaded is not None and reloaded.from_service_worker and reloaded.status == 200
    page.locator("#live-state", has_text="离线").wait_for()
    page.locator("#btn-arrive:not([disabled])").wait_for(timeout=15000)

    sent = []
    page.on("request", lambda r: sent.append(r) if r.method == "POST" and r.url.endswith("/arrive") else None)
    tapped_from = time.time()
    page.click("#btn-arrive")
    tapped_to = time.time()
    page.locator("#outbox", has_text="待发送 1").wait_for()
    page.locator("#outbox", has_text="到场").wait_for()
    page.locator("#current small", has_text="待发送").wait_for()
    item = page.evaluate("JSON.parse(localStorage.getItem('quanzu.field.outbox'))")[0]
    assert item["action"] == "arrive" and item["assignment_id"] == assignment_id
    assert tapped_from - 1 <= when(item["at"]) <= tapped_to + 1
    page.locator("#complete-form").wait_for()  # what comes next is open while the arrival waits
    page.screenshot(path=str(SCREENSHOTS / "field-offline-390x844.png"), full_page=True)
    page.wait_for_timeout(3000)  # still in the lift
    assert sent == []

    # the network returns: the arrival is sent by itself, once, dated by the tap
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/arrive"),
                              timeout=20000) as answer:
        context.set_offline(False)
    first = answer.value
    page.locator("#outbox").wait_for(state="detached", timeout=15000)
    assert first.status == 200 and len(sent) == 1
    assert sent[0].headers["idempotency-key"] == item["key"]
    assert json.loads(sent[0].post_data) == {"at": item["at"]}
    got = httpx.get(f"{live.base}/api/v1/assignments/{assignment_id}", headers=member).json()
    assert got["status"] == "arrived"
    assert abs(when(got["arrived_at"]) - when(item["at"])) < 1
    assert when(got["arrived_received_at"]) - when(got["arrived_at"]) > 2  # received after the wait
    # on scene: 报平安, with the time the next one is due
    due = datetime.fromtimestamp(when(got["checkin_due_at"]), CST).strftime("%H:%M")
    page.locator("#checkin-due", has_text=f"下次报平安 {due}").wait_for(timeout=15000)
    page.click("#btn-checkin")
    page.locator("#outbox").wait_for(state="detached", timeout=15000)
    checked = httpx.get(f"{live.base}/api/v1/assignments/{assignment_id}", headers=member).json()
    assert checked["checkin_at"] and when(checked["checkin_at"]) > when(got["arrived_at"])
    assert when(checked["checkin_due_at"]) - when(checked["checkin_at"]) == 15 * 60  # the policy's field.checkin_every
    due = datetime.fromtimestamp(when(checked["checkin_due_at"]), CST).strftime("%H:%M")
    page.locator("#checkin-due", has_text=f"下次报平安 {due}").wait_for(timeout=15000)

    # the same request with the same key: the same answer, applied once
    again = httpx.post(f"{live.base}/api/v1/assignments/{assignment_id}/arrive", json={"at": item["at"]},
                       headers={**member, "Idempotency-Key": item["key"]}, timeout=10)
    assert again.status_code == first.status and again.json() == first.json()
    timeline = httpx.get(f"{live.base}/api/v1/leads/{lead_id}", headers=commander).json()["timeline"]
    assert [e["kind"] for e in timeline].count("arrived") == 1
    watch.check()
    context.close()


def test_the_location_follows_the_phone_while_on_duty(browser, live, watch, make_user):
    team = INSIDE["team"]
    member = make_user("police", team=team)
    assert httpx.put(live.base + "/api/v1/teams/me/status", json={"status": "off_duty"}, headers=member).status_code == 200
    here = {"longitude": round(INSIDE["lon"] + 0.0007, 6), "latitude": round(INSIDE["lat"] - 0.0004, 6)}
    context = phone(browser, geolocation=here, permissions=["geolocation"])
    watch.attach(context)
    page = context.new_page()
    page.goto(live.base + "/m/")
    login(page, member["X-Username"])
    page.locator("#duty:not(:checked)").wait_for()
    page.check("#duty")  # on duty: no button pressed for the location
    page.locator(".loc", has_text="已上报").wait_for(timeout=15000)
    fix = httpx.get(f"{live.base}/api/v1/teams/{team}", headers=member).json()["last_location"]
    assert (round(fix["lon"], 6), round(fix["lat"], 6)) == (here["longitude"], here["latitude"])

    # the squad moves 200 m: the new position follows (≥ 50 m, no 30 s wait)
    there = {"longitude": round(here["longitude"] + 0.0022, 6), "latitude": here["latitude"]}
    context.set_geolocation(there)
    page.locator(".loc", has_text=f"{there['longitude']:.5f}").wait_for(timeout=15000)
    page.locator(".loc", has_text="已上报").wait_for(timeout=15000)
    fix = httpx.get(f"{live.base}/api/v1/teams/{team}", headers=member).json()["last_location"]
    assert (round(fix["lon"], 6), round(fix["lat"], 6)) == (there["longitude"], there["latitude"])
    watch.check()
    context.close()
