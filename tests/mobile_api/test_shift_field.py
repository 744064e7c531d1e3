"""The shift in the field: a squad late to the scene is chased with a backup offer, a squad on scene
that misses its check-in raises an alarm, and an action made offline keeps the phone's time and is
applied once however often it is resent."""
from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select

from dispatch.models import Alarm, Assignment, LeadEvent, Visit
from service.core import clock
from tests.mobile_api.test_field import neighbours, push_and_work, rows
from workers import tasks


def alarms_of(sync_engine, lead_id):
    return rows(sync_engine, Alarm, Alarm.lead_id == lead_id)


def offers(sync_engine, lead_id):
    return rows(sync_engine, Assignment, Assignment.lead_id == lead_id)


async def test_a_squad_late_to_the_scene_is_chased_with_a_backup_and_the_first_there_counts(
        api_a, client, source_headers, run_worker, make_squad, own_team, sync_engine, commander):
    from tests.factories import INSIDE
    own, near = make_squad(own_team), make_squad(neighbours(sync_engine, INSIDE["beat"])[0])
    lead_id = await push_and_work(client, source_headers, run_worker)  # P0: on scene within 30 minutes
    (first,) = offers(sync_engine, lead_id)
    async with httpx.AsyncClient(base_url=api_a.http) as http:
        r = await http.post(f"/api/v1/assignments/{first.id}/accept", headers=own.headers["police"])
        assert r.status_code == 200
        clock.advance(timedelta(minutes=31))
        try:
            tasks.sweep_deadlines()
        finally:
            clock.set_offset(timedelta(0))
        late = [a for a in alarms_of(sync_engine, lead_id) if a.kind == "on_scene"]
        assert len(late) == 1 and late[0].team_code == own_team and late[0].data["chased"] is True
        backup = [a for a in offers(sync_engine, lead_id) if a.id != first.id]
        assert len(backup) == 1 and backup[0].choice.get("backup") is True and backup[0].status == "offered"
        assert late[0].data["backup_assignment_id"] == backup[0].id and backup[0].team_code == near.code
        (visit,) = rows(sync_engine, Visit, Visit.lead_id == lead_id)
        assert (visit.status, visit.team_code) == ("assigned", own_team)  # still the first squad's

        # the backup accepts, and gets there first: it takes the visit; the alarm ends
        r = await http.post(f"/api/v1/assignments/{backup[0].id}/accept", headers=near.headers["police"])
        assert r.status_code == 200 and r.json()["backup"] is True
        r = await http.post(f"/api/v1/assignments/{backup[0].id}/arrive", headers=near.headers["auxiliary"])
        assert r.status_code == 200
        assert [x.resolved_at is not None for x in alarms_of(sync_engine, lead_id) if x.kind == "on_scene"] == [True]
        r = await http.post(f"/api/v1/assignments/{backup[0].id}/complete", headers=near.headers["police"],
                            json={"outcome": "dissuaded", "met_in_person": True})
        assert r.status_code == 200
    got = {a.id: a for a in offers(sync_engine, lead_id)}
    assert got[first.id].status == "withdrawn" and got[backup[0].id].status == "completed"
    (visit,) = rows(sync_engine, Visit, Visit.lead_id == lead_id)
    assert (visit.status, visit.team_code) == ("done", near.code)


async def test_a_missed_check_in_on_scene_raises_an_alarm_and_a_check_in_resolves_it(
        api_a, client, source_headers, run_worker, make_squad, own_team, sync_engine):
    own = make_squad(own_team)
    lead_id = await push_and_work(client, source_headers, run_worker)
    (a,) = offers(sync_engine, lead_id)
    async with httpx.AsyncClient(base_url=api_a.http) as http:
        assert (await http.post(f"/api/v1/assignments/{a.id}/accept", headers=own.headers["police"])).status_code == 200
        r = await http.post(f"/api/v1/assignments/{a.id}/arrive", headers=own.headers["police"])
        assert r.status_code == 200 and r.json()["checkin_due_at"]
        # an arrival twice is a state conflict
        assert (await http.post(f"/api/v1/assignments/{a.id}/arrive", headers=own.headers["police"])).status_code == 409
        clock.advance(timedelta(minutes=16))  # field.checkin_every = 15m
        try:
            tasks.sweep_deadlines()
        finally:
            clock.set_offset(timedelta(0))
        (alarm,) = [x for x in alarms_of(sync_engine, lead_id) if x.kind == "checkin"]
        assert alarm.team_code == own_team and alarm.assignment_id == a.id and alarm.resolved_at is None
        r = await http.post(f"/api/v1/assignments/{a.id}/checkin", headers=own.headers["grid_worker"])
        assert r.status_code == 200 and r.json()["checkin_at"]
    (alarm,) = [x for x in alarms_of(sync_engine, lead_id) if x.kind == "checkin"]
    assert alarm.resolved_at is not None


async def test_an_offline_arrival_keeps_the_phones_time_and_a_resend_is_applied_once(
        api_a, client, source_headers, run_worker, make_squad, own_team, sync_engine):
    own = make_squad(own_team)
    lead_id = await push_and_work(client, source_headers, run_worker)
    (a,) = offers(sync_engine, lead_id)
    h = own.headers["police"]
    async with httpx.AsyncClient(base_url=api_a.http) as http:
        assert (await http.post(f"/api/v1/assignments/{a.id}/accept", headers=h)).status_code == 200
        accepted = clock.now()
        future = clock.iso(accepted + timedelta(minutes=5))
        bad = await http.post(f"/api/v1/assignments/{a.id}/arrive", headers=h, json={"at": future})
        assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "at"
        naive = await http.post(f"/api/v1/assignments/{a.id}/arrive", headers=h, json={"at": "2026-12-06T10:00:00"})
        assert naive.status_code == 422 and "at" in naive.text
        before = await http.post(f"/api/v1/assignments/{a.id}/arrive", headers=h,
                                 json={"at": clock.iso(a.offered_at - timedelta(minutes=1))})
        assert before.status_code == 422 and before.json()["detail"][0]["field"] == "at"
        on_phone = clock.now()  # tapped now, sent later
        key = {"Idempotency-Key": "arrive-7f3a"}
        first = await http.post(f"/api/v1/assignments/{a.id}/arrive", headers={**h, **key},
                                json={"at": clock.iso(on_phone)})
        assert first.status_code == 200, first.text
        again = await http.post(f"/api/v1/assignments/{a.id}/arrive", headers={**h, **key},
                                json={"at": clock.iso(on_phone)})
        assert again.status_code == 200 and again.json() == first.json()  # the first answer, not a 409
        other = await http.post(f"/api/v1/assignments/{a.id}/checkin", headers={**h, **key})
        assert other.status_code == 422 and other.json()["detail"][0]["field"] == "Idempotency-Key"
        # another member's key is theirs alone
        mine = await http.post(f"/api/v1/assignments/{a.id}/arrive",
                               headers={**own.headers["auxiliary"], **key})
        assert mine.status_code == 409
    (got,) = offers(sync_engine, lead_id)
    assert abs((got.arrived_at - on_phone).total_seconds()) < 0.001
    assert got.arrived_received_at >= got.arrived_at
    with __import__("service.core.db", fromlist=["sync_session"]).sync_session(sync_engine) as s:
        arrived = s.execute(select(LeadEvent).where(LeadEvent.lead_id == lead_id, LeadEvent.kind == "arrived")).all()
    assert len(arrived) == 1
