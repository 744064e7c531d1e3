"""Robot callers' results (`POST /api/v1/calls/results`): recorded as calls through the ladder, their
labels mapped to quanzu's results and outcomes, idempotent on the platform's call id."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from dispatch.enums import CallResult, Outcome
from dispatch.ladder.robot import load_tag_map, parse_tag_map
from dispatch.models import CallAttempt, Lead
from tests.ladder.helpers import events, lead_row, tiered

pytestmark = pytest.mark.usefixtures("district", "clean")
AT = "2026-11-01T10:02:00+08:00"


def test_tags_map_to_results_and_outcomes():
    tags = load_tag_map()
    assert tags.apply(CallResult.connected, ["已转账", "vip"]) == (CallResult.connected, Outcome.already_defrauded,
                                                                   ["vip"])
    assert tags.apply(CallResult.no_answer, ["关机"]) == (CallResult.powered_off, None, [])
    assert tags.apply(CallResult.no_answer, ["claims_transferred"])[:2] == (CallResult.connected,
                                                                            Outcome.already_defrauded)
    assert tags.apply(CallResult.busy, []) == (CallResult.busy, None, [])
    with pytest.raises(ValueError, match=r"rule\[0\]"):
        parse_tag_map('[[rule]]\ntags = ["x"]\noutcome = "nope"\n', "t.toml")


def calls_of(sync_engine, lead_id):
    with sync_engine.connect() as conn:
        return conn.execute(select(CallAttempt).where(CallAttempt.lead_id == lead_id).order_by(CallAttempt.id)).all()


async def test_claims_transferred_raises_the_lead_to_p0_once(client, source_headers, sync_engine, run_worker):
    lead_id = await tiered(client, source_headers, run_worker, "P2")
    with sync_engine.connect() as conn:
        source, source_id = conn.execute(select(Lead.source, Lead.source_id).where(Lead.id == lead_id)).one()
    body = {"source": source, "source_id": source_id, "result": "connected", "at": AT, "duration_s": 48,
            "tags": ["已转账", "高意向"], "note": "robot", "call_id": "robot-1"}
    r = await client.post("/api/v1/calls/results", headers=source_headers, json=body)
    assert r.status_code == 201, r.text
    got = r.json()
    assert (got["result"], got["outcome"], got["duplicate"]) == ("connected", "already_defrauded", False)
    assert got["unmapped_tags"] == ["高意向"] and "already_defrauded" in got["rules"]
    row = lead_row(sync_engine, lead_id)
    assert row.tier == "P0" and "stop_payment" in row.flags
    (call,) = calls_of(sync_engine, lead_id)
    assert (call.channel, call.duration_s, call.tags, call.external_id) == ("robot", 48, ["已转账", "高意向"], "robot-1")
    assert call.at.isoformat().startswith("2026-11-01T02:02")  # when the robot called (UTC)

    again = await client.post("/api/v1/calls/results", headers=source_headers, json=body)
    assert again.status_code == 201 and again.json()["duplicate"] is True and again.json()["id"] == call.id
    assert len(calls_of(sync_engine, lead_id)) == 1 and len(events(sync_engine, lead_id, "tier_raised")) == 1


async def test_a_robot_that_reached_the_person_without_an_outcome_hands_over_to_the_desk(
        client, source_headers, sync_engine, run_worker):
    lead_id = await tiered(client, source_headers, run_worker, "P2")
    r = await client.post("/api/v1/calls/results", headers=source_headers,
                          json={"lead_id": lead_id, "result": "connected", "at": AT, "tags": ["未知标签"]})
    assert r.status_code == 201, r.text
    assert r.json()["rules"] == ["robot_no_outcome"] and r.json()["unmapped_tags"] == ["未知标签"]
    assert lead_row(sync_engine, lead_id).needs_call


async def test_failed_robot_calls_count_on_the_ladder(client, source_headers, sync_engine, run_worker):
    lead_id = await tiered(client, source_headers, run_worker, "P1")
    rules = []
    for result in ("no_answer", "no_answer", "rejected"):
        r = await client.post("/api/v1/calls/results", headers=source_headers,
                              json={"lead_id": lead_id, "result": result, "at": AT})
        assert r.status_code == 201, r.text
        rules = r.json()["rules"]
    assert rules == ["failed_calls"]
    assert [c.result for c in calls_of(sync_engine, lead_id)] == ["no_answer", "no_answer", "rejected"]


@pytest.mark.parametrize("body, field", [
    ({"result": "maybe"}, "result"),
    ({"at": "yesterday"}, "at"),
    ({"at": "2999-01-01T00:00:00+08:00"}, "at"),
    ({"duration_s": -1}, "duration_s"),
    ({"lead_id": None}, "lead_id"),
    ({"lead_id": None, "source": "national_platform"}, "source_id"),
])
async def test_bad_results_name_the_field(body, field, client, source_headers, run_worker):
    lead_id = await tiered(client, source_headers, run_worker, "P2")
    r = await client.post("/api/v1/calls/results", headers=source_headers,
                          json={"lead_id": lead_id, "result": "no_answer", "at": AT, **body})
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["detail"]]


async def test_unknown_and_closed_leads(client, source_headers, make_user, run_worker):
    r = await client.post("/api/v1/calls/results", headers=source_headers,
                          json={"source": "national_platform", "source_id": "nope", "result": "busy", "at": AT})
    assert r.status_code == 404
    r = await client.post("/api/v1/calls/results", headers=source_headers,
                          json={"lead_id": 987654, "result": "busy", "at": AT})
    assert r.status_code == 404
    lead_id = await tiered(client, source_headers, run_worker, "P2")
    closed = await client.post(f"/api/v1/leads/{lead_id}/close", headers=make_user("commander"),
                               json={"outcome": "false_alarm"})
    assert closed.status_code == 200, closed.text
    r = await client.post("/api/v1/calls/results", headers=source_headers,
                          json={"lead_id": lead_id, "result": "busy", "at": AT})
    assert r.status_code == 409
    r = await client.post("/api/v1/calls/results", headers=make_user("operator"),
                          json={"lead_id": lead_id, "result": "busy", "at": AT})
    assert r.status_code == 403  # only a source's API key
