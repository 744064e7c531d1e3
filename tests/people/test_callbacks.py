"""回访 honestly: a callback answered `not_reached` is not done — it is tried again on the policy's
`[callback]` schedule, up to `max_attempts`, and 回访率 (callbacks done / callbacks due) says so."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from dispatch.models import Callback, LeadDeadline
from dispatch.policy import load_policy
from service.core import clock
from tests.ladder.helpers import events, lead_row, tiered

pytestmark = pytest.mark.usefixtures("district", "clean")
POLICY = load_policy()


async def _closed(client, headers, commander, run_worker, sync_engine) -> int:
    lead_id = await tiered(client, headers, run_worker, "P2")
    r = await client.post(f"/api/v1/leads/{lead_id}/close", headers=commander, json={"outcome": "dissuaded"})
    assert r.status_code == 200, r.text
    return lead_id


async def _answer(client, headers, lead_id: int, result: str) -> dict:
    r = await client.post(f"/api/v1/leads/{lead_id}/callbacks", headers=headers, json={"result": result})
    assert r.status_code == 201, r.text
    return r.json()


async def _rate(client, headers) -> tuple[int, int, float | None]:
    t = (await client.get("/api/v1/stats", headers=headers)).json()["total"]
    return t["callbacks_due"], t["callbacks_done"], t["callback_rate"]


async def _due(client, headers) -> list[tuple[int, int]]:
    items = (await client.get("/api/v1/callbacks/due", headers=headers)).json()["items"]
    return [(x["lead_id"], x["attempt"]) for x in items]


async def test_a_not_reached_callback_is_retried_and_not_done(client, source_headers, commander, run_worker,
                                                              sync_engine):
    assert (POLICY.callback.retry_after, POLICY.callback.max_attempts) == (timedelta(days=1), 3)
    lead_id = await _closed(client, source_headers, commander, run_worker, sync_engine)
    with sync_engine.connect() as conn:
        first_due = conn.execute(select(Callback.due_at).where(Callback.lead_id == lead_id)).scalar_one()
    t = first_due + timedelta(minutes=1)
    for attempt in (1, 2, 3):
        with clock.frozen(t):
            assert await _due(client, commander) == [(lead_id, attempt)]
            answer = await _answer(client, commander, lead_id, "not_reached")
            assert (answer["attempt"], answer["done"]) == (attempt, False)
            assert await _rate(client, commander) == (1, 0, 0.0)  # due, not done: 回访率 0 %, not 100 %
            assert await _due(client, commander) == []  # the next attempt is not due yet
        if attempt < 3:
            assert answer["next_attempt_due_at"] == clock.iso(t + POLICY.callback.retry_after)
            with sync_engine.connect() as conn:  # the callback deadline is a promise again (an alarm if missed)
                d = conn.execute(select(LeadDeadline).where(LeadDeadline.lead_id == lead_id,
                                                            LeadDeadline.name == "callback")).one()
            assert (d.state, d.due_at) == ("pending", t + POLICY.callback.retry_after)
            t += POLICY.callback.retry_after + timedelta(minutes=1)
        else:
            assert answer["next_attempt_due_at"] is None  # the last attempt: it stays not done
    with clock.frozen(t + timedelta(days=30)):
        assert await _due(client, commander) == []
        r = await client.post(f"/api/v1/leads/{lead_id}/callbacks", headers=commander, json={"result": "safe"})
        assert r.status_code == 409  # nothing pending any more
    kinds = [(e.data["attempt"], e.data["done"], e.data["gave_up"]) for e in events(sync_engine, lead_id, "callback")]
    assert kinds == [(1, False, False), (2, False, False), (3, False, True)]
    assert lead_row(sync_engine, lead_id).status == "closed"


async def test_reached_on_a_retry_counts_as_done(client, source_headers, commander, run_worker, sync_engine):
    reached = await _closed(client, source_headers, commander, run_worker, sync_engine)
    never = await _closed(client, source_headers, commander, run_worker, sync_engine)
    with sync_engine.connect() as conn:
        due = conn.execute(select(Callback.due_at).where(Callback.lead_id == reached)).scalar_one()
    t = due + timedelta(hours=1)
    with clock.frozen(t):
        for lead_id in (reached, never):
            await _answer(client, commander, lead_id, "not_reached")
        assert await _rate(client, commander) == (2, 0, 0.0)
    with clock.frozen(t + timedelta(days=1, hours=1)):
        assert sorted(await _due(client, commander)) == sorted([(reached, 2), (never, 2)])
        answer = await _answer(client, commander, reached, "safe")
        assert (answer["attempt"], answer["done"], answer["next_attempt_due_at"]) == (2, True, None)
        assert await _rate(client, commander) == (2, 1, 0.5)
        h = (await client.post("/api/v1/people/history", json={"phone": lead_row(sync_engine, reached).phone},
                               headers=commander)).json()
    assert [(c["attempt"], c["result"]) for c in h["callbacks"]] == [(1, "not_reached"), (2, "safe")]
    assert h["totals"]["callbacks_done"] == 1
