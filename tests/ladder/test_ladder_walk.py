"""Each tier walked through its ladder with a moved clock, on real PostgreSQL and Redis: every
deadline met, and every deadline missed, with the audit trail checked."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from dispatch.ladder.deadlines import mark_met
from dispatch.models import Callback, SmsMessage, Visit
from service.core import clock
from service.core.db import sync_session
from tests.ladder.helpers import deadlines, events, lead_row, received_at, tiered
from workers.tasks import process_leads, sweep_deadlines

pytestmark = pytest.mark.usefixtures("district", "clean")

# kind → (tier, deadline rows written at tiering, how the lead is dissuaded)
WALKS = {
    "P0": ("P0", {"sign", "first_call", "connected_call", "on_scene"}, "visit"),
    "P1": ("P1", {"sign", "first_call", "connected_call"}, "call"),
    "P1_resident": ("P1", {"sign", "first_call", "connected_call", "visit"}, "visit"),
    "P2": ("P2", {"sign", "first_call"}, "call"),
    "P2_resident": ("P2", {"sign", "first_call", "visit"}, "visit"),
    "P3": ("P3", {"sign", "sms"}, "close"),
}


@pytest.mark.parametrize("kind", WALKS)
async def test_every_deadline_met(kind, client, source_headers, make_user, sync_engine, run_worker):
    tier, names, how = WALKS[kind]
    operator = make_user("operator")
    lead_id = await tiered(client, source_headers, run_worker, kind)  # the worker also sends the SMS
    assert lead_row(sync_engine, lead_id).tier == tier
    assert set(deadlines(sync_engine, lead_id)) == names
    t0 = received_at(sync_engine, lead_id)
    with clock.frozen(t0 + timedelta(minutes=1)):
        r = await client.post(f"/api/v1/leads/{lead_id}/sign", headers=operator)
        assert r.status_code == 200, r.text
        if "first_call" in names:
            r = await client.post(f"/api/v1/leads/{lead_id}/calls", headers=operator,
                                  json={"result": "connected", "outcome": "dissuaded", "note": "已劝阻"})
            assert r.status_code == 201, r.text
            assert r.json()["rules"] == (["dissuaded_by_phone"] if how == "call" else
                                         ["dissuaded_visit_still_required"])
        if how == "visit":  # field dispatch: the squad arrives (its seam: mark_met), completes, closes
            with sync_session(sync_engine) as s:
                visit = s.execute(select(Visit).where(Visit.lead_id == lead_id)).scalar_one()
                # required, with its deadline; field dispatch took it at once: offered to a squad, or
                # (no squad on duty in this test) back with the center
                assert visit.status in ("waiting", "offered", "failed") and visit.due_at is not None
                mark_met(s, lead_id, "on_scene" if tier == "P0" else "visit")
                s.commit()
        if how != "call":
            r = await client.post(f"/api/v1/leads/{lead_id}/close", headers=operator,
                                  json={"outcome": "dissuaded", "note": "见面劝阻", "saved_cny": 1200.5})
            assert r.status_code == 200, r.text
    state = lead_row(sync_engine, lead_id)
    assert (state.status, state.outcome) == ("closed", "dissuaded")
    rows = deadlines(sync_engine, lead_id)
    assert rows["callback"].state == "pending"
    assert rows["callback"].due_at - state.closed_at == timedelta(days=1 if tier == "P0" else 3)
    with clock.frozen(state.closed_at + timedelta(days=3, minutes=1)):
        due = (await client.get("/api/v1/callbacks/due", headers=operator)).json()["items"]
        assert [x["lead_id"] for x in due] == [lead_id]
        r = await client.post(f"/api/v1/leads/{lead_id}/callbacks", headers=operator, json={"result": "safe"})
        assert r.status_code == 201, r.text
        assert sweep_deadlines() == 0  # nothing left to miss
    rows = deadlines(sync_engine, lead_id)
    assert {n: d.state for n, d in rows.items()} == {n: "met" for n in names | {"callback"}}
    assert all(d.met_at is not None for d in rows.values())
    kinds = [e.kind for e in events(sync_engine, lead_id)]
    assert kinds[:3] == ["received", "placed", "tiered"] and "deadline_missed" not in kinds
    assert kinds.count("signed") == kinds.count("closed") == kinds.count("callback") == 1
    assert ("sms_sent" in kinds) == (tier in ("P2", "P3"))
    with sync_engine.connect() as conn:
        assert conn.execute(select(Callback.result).where(Callback.lead_id == lead_id)).scalars().all() == ["safe"]


@pytest.mark.parametrize("kind", WALKS)
async def test_every_deadline_missed(kind, client, source_headers, push_only, sync_engine):
    tier, names, _how = WALKS[kind]
    lead_id = await push_only(kind)
    t0 = received_at(sync_engine, lead_id)
    # Past every tiering deadline (the longest is P2's 72 h visit).
    with clock.frozen(t0 + timedelta(days=4)):
        assert sweep_deadlines() == len(names)
        missed = {e.data["name"]: e.data for e in events(sync_engine, lead_id, "deadline_missed")}
        assert set(missed) == names
        escalations = events(sync_engine, lead_id, "escalated")
        if tier in ("P0", "P1"):  # no connected call within 10 minutes → face-to-face
            assert missed["connected_call"]["rule"] == "no_connection"
            assert [e.data["rule"] for e in escalations] == ["no_connection"]
            assert escalations[0].data["already_open"] is (kind != "P1")
        else:
            assert escalations == []
        assert sweep_deadlines() == 0  # acted on once
        rows = deadlines(sync_engine, lead_id)
        pending = {n for n, d in rows.items() if d.state == "pending"}
        assert pending == ({"visit"} if kind == "P1" else set())  # the escalated visit has its own deadline
        clock.advance(timedelta(hours=25))
        assert sweep_deadlines() == len(pending)
    rows = deadlines(sync_engine, lead_id)
    assert {n: d.state for n, d in rows.items()} == {n: "missed" for n in names | pending}
    assert all(d.acted_at is not None and d.met_at is None for d in rows.values())
    kinds = [e.kind for e in events(sync_engine, lead_id)]
    assert kinds.count("deadline_missed") == len(rows)
    with sync_engine.connect() as conn:
        visits = conn.execute(select(Visit.reason).where(Visit.lead_id == lead_id)).scalars().all()
        sms = conn.execute(select(SmsMessage.status).where(SmsMessage.lead_id == lead_id,
                                                           SmsMessage.purpose == "warning")).scalars().all()
    assert visits == {"P0": ["policy"], "P1": ["no_connection"], "P1_resident": ["policy"],
                      "P2_resident": ["policy"]}.get(kind, [])
    assert sms == (["pending"] if tier in ("P2", "P3") else [])  # never handed to a gateway here


async def test_a_missed_callback_is_recorded(client, source_headers, make_user, sync_engine, run_worker):
    operator = make_user("operator")
    lead_id = await tiered(client, source_headers, run_worker, "P3")
    r = await client.post(f"/api/v1/leads/{lead_id}/close", headers=operator, json={"outcome": "refused"})
    assert r.status_code == 200
    closed = lead_row(sync_engine, lead_id).closed_at
    with clock.frozen(closed + timedelta(days=3, seconds=1)):
        assert sweep_deadlines() == 1
    assert deadlines(sync_engine, lead_id)["callback"].state == "missed"
    assert [e.data["name"] for e in events(sync_engine, lead_id, "deadline_missed")] == ["callback"]


@pytest.fixture
def push_only(client, source_headers, app):
    """Push and tier a lead without running its SMS job (so the SMS deadline can be missed)."""
    from tests.ladder.helpers import lead_of, push

    async def run(kind: str) -> int:
        lead_id = await push(client, source_headers, lead_of(kind))
        await app.state.after_commit.drain()
        assert process_leads([lead_id])["done"] == 1
        return lead_id

    return run
