"""Alarms that escalate: a missed deadline raises one; unacknowledged, it climbs the policy's levels;
acknowledged it stops; the step done after all resolves it."""
from __future__ import annotations

from datetime import timedelta

import pytest

from service.core import clock
from tests.factories import INSIDE
from tests.ladder.helpers import events, received_at, tiered
from workers.tasks import sweep_deadlines

pytestmark = pytest.mark.usefixtures("district", "clean")


async def alarms(client, headers) -> list[dict]:
    r = await client.get("/api/v1/alarms", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["levels"] == ["duty_officer", "duty_commander", "center_head"]
    return r.json()["items"]


async def test_a_missed_sign_off_raises_an_alarm_that_climbs_until_acknowledged(client, source_headers, make_user,
                                                                              run_worker, sync_engine):
    operator, commander = make_user("operator"), make_user("commander")
    lead_id = await tiered(client, source_headers, run_worker, "P0")
    t0 = received_at(sync_engine, lead_id)
    with clock.frozen(t0 + timedelta(minutes=2, seconds=1)):  # P0 sign: 2 minutes
        assert sweep_deadlines() >= 1
        (alarm,) = [a for a in await alarms(client, operator) if a["kind"] == "sign"]
        assert (alarm["lead_id"], alarm["level"], alarm["level_name"], alarm["tier"]) == \
               (lead_id, 1, "duty_officer", "P0")
        assert alarm["escalate_at"]  # P0: climbs after 2 minutes unacknowledged
        assert sweep_deadlines() == 0  # raised once
    with clock.frozen(t0 + timedelta(minutes=4, seconds=2)):
        sweep_deadlines()
        (alarm,) = [a for a in await alarms(client, operator) if a["kind"] == "sign"]
        assert (alarm["level"], alarm["level_name"]) == (2, "duty_commander")
    with clock.frozen(t0 + timedelta(minutes=6, seconds=3)):
        sweep_deadlines()
        (alarm,) = [a for a in await alarms(client, operator) if a["kind"] == "sign"]
        assert (alarm["level"], alarm["level_name"], alarm["escalate_at"]) == (3, "center_head", None)
        r = await client.post(f"/api/v1/alarms/{alarm['id']}/ack", headers=commander)
        assert r.status_code == 200 and r.json()["acked_by"] == commander["X-Username"]
        assert all(a["id"] != alarm["id"] for a in await alarms(client, operator))
        again = await client.post(f"/api/v1/alarms/{alarm['id']}/ack", headers=operator)
        assert again.status_code == 409
    assert (await client.post("/api/v1/alarms/987654321/ack", headers=operator)).status_code == 404
    assert (await client.get("/api/v1/alarms", headers=make_user("police", INSIDE["team"]))).status_code == 403
    kinds = [e.kind for e in events(sync_engine, lead_id) if e.kind.startswith("alarm_")]
    assert kinds.count("alarm_raised") >= 1 and kinds.count("alarm_escalated") == 2 and "alarm_acked" in kinds


async def test_the_step_done_late_resolves_its_alarm(client, source_headers, make_user, run_worker, sync_engine):
    operator = make_user("operator")
    lead_id = await tiered(client, source_headers, run_worker, "P1")
    t0 = received_at(sync_engine, lead_id)
    with clock.frozen(t0 + timedelta(minutes=5, seconds=1)):  # P1 sign: 5 minutes
        sweep_deadlines()
        assert [a["kind"] for a in await alarms(client, operator)] == ["sign"]
        assert (await client.post(f"/api/v1/leads/{lead_id}/sign", headers=operator)).status_code == 200
        assert await alarms(client, operator) == []
    with clock.frozen(t0 + timedelta(minutes=15, seconds=1)):  # first_call: 15 minutes
        sweep_deadlines()
        assert {a["kind"] for a in await alarms(client, operator)} == {"first_call", "connected_call"}
        r = await client.post(f"/api/v1/leads/{lead_id}/close", headers=operator, json={"outcome": "false_alarm"})
        assert r.status_code == 200
        assert await alarms(client, operator) == []  # the lead ended: nothing left to chase
