"""The call ladder, rule by rule (policy.toml [escalation] and [ladder]), through the API."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from dispatch.models import AccessLog, CallAttempt, Visit
from tests.ladder.helpers import deadlines, events, lead_row, tiered

pytestmark = pytest.mark.usefixtures("district", "clean")


@pytest.fixture(scope="module")
def operator(make_user):
    return make_user("operator")


async def call(client, headers, lead_id, **body):
    r = await client.post(f"/api/v1/leads/{lead_id}/calls", headers=headers, json=body)
    assert r.status_code == 201, r.text
    return r.json()


def visits(sync_engine, lead_id):
    with sync_engine.connect() as conn:
        return conn.execute(select(Visit.reason, Visit.status).where(Visit.lead_id == lead_id)).all()


# kind, lead overrides, calls made, → (rules fired by the last call, status, still in the queue, visit reasons)
LADDER = [
    ("P2", {}, [{"result": "no_answer"}, {"result": "busy"}], ([], "working", True, [])),
    # a busy line on an urgent lead: the visit at once, and the operators keep calling
    ("P1", {}, [{"result": "no_answer"}, {"result": "busy"}], (["busy_line"], "working", True, ["busy_line"])),
    ("P1", {}, [{"result": "no_answer"}, {"result": "powered_off"}, {"result": "rejected"}],
     (["failed_calls"], "working", False, ["failed_calls"])),
    ("P2", {}, [{"result": "invalid_number"}], (["invalid_number_placed"], "working", False, ["invalid_number_placed"])),
    ("P2", {"location": None, "subject": {"id_number": None}}, [{"result": "invalid_number"}],
     (["invalid_number_unplaced"], "working", False, [])),
    ("P2", {}, [{"result": "connected", "outcome": "dissuaded"}], (["dissuaded_by_phone"], "closed", False, [])),
    ("P2_resident", {}, [{"result": "connected", "outcome": "dissuaded"}],
     (["dissuaded_visit_still_required"], "working", False, ["policy"])),
    ("P0", {}, [{"result": "connected", "outcome": "dissuaded"}],
     (["dissuaded_visit_still_required"], "working", False, ["policy"])),
    ("P1", {}, [{"result": "connected", "outcome": "refused"}], (["refused_by_phone"], "working", False,
                                                                   ["refused_by_phone"])),
    ("P2", {}, [{"result": "connected", "outcome": "false_alarm"}], (["closed_by_phone"], "closed", False, [])),
    ("P1", {}, [{"result": "connected", "outcome": "already_defrauded"}],
     (["already_defrauded", "already_defrauded"], "working", False, ["already_defrauded"])),
]


@pytest.mark.parametrize("kind, over, calls, expected", LADDER)
async def test_call_ladder(kind, over, calls, expected, client, source_headers, operator, sync_engine, run_worker):
    rules, status, queued, visit_reasons = expected
    lead_id = await tiered(client, source_headers, run_worker, kind, **over)
    for body in calls:
        answer = await call(client, operator, lead_id, **body)
    assert answer["rules"] == rules and answer["lead"]["status"] == status
    row = lead_row(sync_engine, lead_id)
    assert (row.status, row.needs_call) == (status, queued)
    assert [v.reason for v in visits(sync_engine, lead_id)] == visit_reasons
    logged = [e.data for e in events(sync_engine, lead_id, "call")]
    assert [x["result"] for x in logged] == [c["result"] for c in calls] and logged[-1]["rules"] == rules
    with sync_engine.connect() as conn:
        assert conn.execute(select(CallAttempt.result).where(CallAttempt.lead_id == lead_id)
                            .order_by(CallAttempt.id)).scalars().all() == [c["result"] for c in calls]
    assert deadlines(sync_engine, lead_id)["first_call"].state == "met"
    if rules == ["invalid_number_unplaced"]:
        assert [e.data["rule"] for e in events(sync_engine, lead_id, "returned_to_center")] == rules
    if "already_defrauded" in rules:  # → P0, 止付, case follow-up, squad
        assert row.tier == "P0" and "stop_payment" in row.flags
        kinds = [e.kind for e in events(sync_engine, lead_id)]
        assert {"tier_raised", "stop_payment", "case_follow_up"} <= set(kinds)
        assert deadlines(sync_engine, lead_id)["on_scene"].state == "pending"
    if status == "closed":  # 回访 for a dissuaded person; none for a false alarm (ladder.callback_outcomes)
        callback = deadlines(sync_engine, lead_id).get("callback")
        assert (callback.state if callback else None) == ("pending" if row.outcome == "dissuaded" else None)


async def test_queue_is_ordered_by_the_most_urgent_deadline_and_audited(client, source_headers, operator,
                                                                         sync_engine, run_worker):
    p2 = await tiered(client, source_headers, run_worker, "P2")
    p0 = await tiered(client, source_headers, run_worker, "P0")
    p1 = await tiered(client, source_headers, run_worker, "P1")
    # SMS only: not in the queue (another ID number: a person warned twice in 7 days would be P2)
    p3 = await tiered(client, source_headers, run_worker, "P3", subject={"id_number": None})
    r = await client.get("/api/v1/calls/queue", headers=operator)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [x["id"] for x in items] == [p0, p1, p2]
    assert items[0]["next_deadline"]["name"] == "sign" and items[0]["subject"]["phone"].isdigit()
    assert "*" in items[0]["subject"]["phone_masked"]
    await call(client, operator, p0, result="connected")  # connected: off the queue
    items = (await client.get("/api/v1/calls/queue", headers=operator)).json()["items"]
    assert [x["id"] for x in items] == [p1, p2]
    with sync_engine.connect() as conn:
        logged = conn.execute(select(AccessLog.lead_id).where(AccessLog.what == "calls.queue")).scalars().all()
    assert sorted(logged) == sorted([p0, p1, p2, p1, p2]) and p3 not in logged


async def test_defrauded_callback_records_the_loss_and_reopens(client, source_headers, operator, sync_engine,
                                                               run_worker):
    from datetime import timedelta

    from service.core import clock

    lead_id = await tiered(client, source_headers, run_worker, "P2")
    await call(client, operator, lead_id, result="connected", outcome="dissuaded")
    closed_at = lead_row(sync_engine, lead_id).closed_at
    with clock.frozen(closed_at + timedelta(days=3)):
        r = await client.post(f"/api/v1/leads/{lead_id}/callbacks", headers=operator,
                              json={"result": "defrauded", "loss_cny": 3000, "note": "回访称已被骗"})
    assert r.status_code == 201, r.text
    row = lead_row(sync_engine, lead_id)
    assert (row.status, float(row.loss_cny), row.outcome) == ("working", 3000.0, None)
    assert "stop_payment" in row.flags
    assert [e.data["rule"] for e in events(sync_engine, lead_id, "reopened")] == ["callback_defrauded"]
    assert [v.reason for v in visits(sync_engine, lead_id)] == ["callback_defrauded"]
    assert deadlines(sync_engine, lead_id)["callback"].state == "met"
    # and the follow-up closes it again, with a new callback
    r = await client.post(f"/api/v1/leads/{lead_id}/close", headers=operator,
                          json={"outcome": "already_defrauded", "loss_cny": 3000})
    assert r.status_code == 200 and r.json()["status"] == "closed"
    assert deadlines(sync_engine, lead_id)["callback"].state == "pending"
