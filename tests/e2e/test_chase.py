"""A squad that accepted and never arrived is chased: the on-scene deadline passes, the center gets an
alarm naming the squad, and the next squad's phone gets the visit as a backup offer, which it takes."""
from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import text

from tests.e2e.conftest import PHONE, SCREENSHOTS, WALL, login
from tests.factories import INSIDE, make_lead
from tests.mobile_api.test_field import neighbours

LIVE_ENV = {"DEADLINE_SWEEP_EVERY_SECONDS": "1", "FIELD_SWEEP_EVERY_SECONDS": "1", "RECONCILE_EVERY_SECONDS": "1"}
# The packaged policy with a P0 squad due on scene 20 s after the lead arrived.
LIVE_POLICY = (Path(__file__).parents[2] / "dispatch" / "policy.toml").read_text(encoding="utf-8").replace(
    'on_scene = "30m"', 'on_scene = "20s"')


def on_duty(sync_engine, *teams: str) -> None:
    with sync_engine.begin() as conn:
        conn.execute(text("UPDATE team SET status = 'off_duty'"))
        conn.execute(text("UPDATE team SET status = 'on_duty', last_lon = home_lon, last_lat = home_lat, "
                          "last_at = now() WHERE code = ANY(:t)"), {"t": list(teams)})


def test_a_squad_late_to_the_scene_is_chased_and_the_backup_takes_it_on_the_phone(
        browser, live, watch, clean, make_user, source_headers, commander, sync_engine):
    assert 'on_scene = "20s"' in LIVE_POLICY
    own, near = INSIDE["team"], neighbours(sync_engine, INSIDE["beat"])[0]
    late, backup = make_user("police", team=own), make_user("police", team=near)
    on_duty(sync_engine, own, near)

    context = browser.new_context(viewport=PHONE, locale="zh-CN", is_mobile=True, has_touch=True)
    watch.attach(context)
    page = context.new_page()
    page.goto(live.base + "/m/")
    login(page, backup["X-Username"])

    r = httpx.post(live.base + "/api/v1/leads", headers=source_headers,
                   json=make_lead(warning_type="fund_transfer", risk_level=1, amount_cny=50000))
    assert r.status_code == 202
    lead_id = r.json()["id"]
    with httpx.Client(base_url=live.base, timeout=10) as http:
        first = None
        for _ in range(300):  # the worker tiers it and offers it to the beat's own squad
            items = http.get("/api/v1/assignments", params={"status": "offered"}, headers=late).json()["items"]
            first = next((a for a in items if a["lead_id"] == lead_id), None)
            if first:
                break
            page.wait_for_timeout(100)
        assert first is not None and first["team_code"] == own
        assert http.post(f"/api/v1/assignments/{first['id']}/accept", headers=late).status_code == 200

        # 20 s on: nobody on scene → the backup offer reaches the other squad's phone
        page.locator("#btn-accept").wait_for(timeout=60000)
        page.locator("#offer .backup", has_text="增援").wait_for(timeout=5000)  # marked as a backup
        mine = http.get("/api/v1/assignments", headers=backup).json()["items"]
        (offer,) = [a for a in mine if a["lead_id"] == lead_id]
        assert offer["backup"] is True and offer["status"] == "offered" and offer["team_code"] == near
        alarms = http.get("/api/v1/alarms", headers=commander).json()["items"]
        chased = [a for a in alarms if a["lead_id"] == lead_id and a["kind"] == "on_scene"]
        assert len(chased) == 1 and chased[0]["team_code"] == own
        assert chased[0]["data"]["backup_team_code"] == near
        page.screenshot(path=str(SCREENSHOTS / "field-backup-390x844.png"), full_page=True)

        page.click("#btn-accept")
        page.locator("#btn-arrive:not([disabled])").wait_for(timeout=15000)
        page.click("#btn-arrive")
        page.locator("#complete-form").wait_for(timeout=15000)
        for _ in range(150):  # the page sends the arrival from its outbox
            if http.get(f"/api/v1/assignments/{offer['id']}", headers=backup).json()["status"] == "arrived":
                break
            page.wait_for_timeout(100)
        assert http.get(f"/api/v1/assignments/{offer['id']}", headers=backup).json()["status"] == "arrived"
        alarms = http.get("/api/v1/alarms", headers=commander).json()["items"]
        assert not [a for a in alarms if a["lead_id"] == lead_id and a["kind"] == "on_scene"]  # resolved
    page.set_viewport_size(WALL)  # the same page on a desktop (a station's PC)
    page.screenshot(path=str(SCREENSHOTS / "field-1920x1080.png"))
    watch.check()
    context.close()
