"""一次预警一件事: a second warning about a person whose work is open joins that work — one ladder (one
SMS, one call-queue entry, at most one visit), the second source still answered with its own id, a
more urgent one raising the work's tier, and the KPIs counting the work once."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from dispatch.models import Lead, LeadDeadline, SmsMessage, Visit
from service.core import clock
from tests.factories import id_number
from tests.ladder.helpers import events, lead_of, lead_row, push

pytestmark = pytest.mark.usefixtures("district", "clean")

T0 = datetime.now(timezone(timedelta(hours=8))).replace(microsecond=0) - timedelta(hours=12)  # within 30 days
PERSON = {"phone": "13700001111", "id_number": id_number(700_001)}


def _at(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).isoformat()


def _count(sync_engine, model, *where) -> int:
    with sync_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


async def test_two_sources_an_hour_apart_make_one_ladder(client, source_headers, commander, run_worker, sync_engine):
    first = lead_of("P2_resident", source="national_platform", pushed_at=_at(0), subject=PERSON)
    second = lead_of("P2_resident", source="provincial_center", pushed_at=_at(1), subject=PERSON,
                     warning_type="fraud_sms")
    r1 = await client.post("/api/v1/leads", json=first, headers=source_headers)
    await run_worker()
    r2 = await client.post("/api/v1/leads", json=second, headers=source_headers)
    assert (r1.status_code, r2.status_code) == (202, 202)  # each source answered with its own id
    work, joined = r1.json()["id"], r2.json()["id"]
    assert work != joined and r2.json()["status"] == "received"
    await run_worker()

    w, j = lead_row(sync_engine, work), lead_row(sync_engine, joined)
    assert (w.status, w.merged_into, w.tier) == ("tiered", None, "P2")
    assert (j.status, j.outcome, j.merged_into, j.tier) == ("closed", "duplicate", work, "P2")
    assert w.person_id == j.person_id is not None
    # one ladder: one warning SMS, one lead in the call queue, at most one visit; nothing for the second
    assert _count(sync_engine, SmsMessage, SmsMessage.purpose == "warning") == 1
    assert _count(sync_engine, SmsMessage, SmsMessage.lead_id == joined) == 0
    assert _count(sync_engine, Lead, Lead.needs_call) == 1 and w.needs_call and not j.needs_call
    assert _count(sync_engine, Visit) <= 1 and _count(sync_engine, Visit, Visit.lead_id == joined) == 0
    assert _count(sync_engine, LeadDeadline, LeadDeadline.lead_id == joined) == 0
    (merged,) = events(sync_engine, joined, "merged")
    assert merged.data["into"] == work and merged.actor == "worker"
    (told,) = events(sync_engine, work, "lead_merged")
    assert told.data["lead_id"] == joined and told.data["source"] == "provincial_center"
    assert told.data["raises_tier"] is False
    assert not events(sync_engine, work, "tier_raised")

    # the queue shows the work once; the detail of each names the other
    queue = (await client.get("/api/v1/queue", headers=commander)).json()
    assert [x["id"] for x in queue["items"]] == [work]
    assert queue["items"][0]["person"] == {"warned_30d": 1, "visits": 0}  # one warning, not two
    detail = (await client.get(f"/api/v1/leads/{joined}", headers=commander)).json()
    assert (detail["merged_into"], detail["person_id"], detail["status"]) == (work, w.person_id, "closed")
    assert detail["person"] == {"warned_30d": 1, "visits": 0}
    # the second source's push again: still its own id, a duplicate of itself
    again = await client.post("/api/v1/leads", json=second, headers=source_headers)
    assert again.status_code == 200 and again.json() == {"id": joined, "duplicate": True}

    # the KPIs count the work once and say what it merged
    stats = (await client.get("/api/v1/stats", params={"group_by": "source"}, headers=commander)).json()
    assert (stats["total"]["leads"], stats["total"]["merged"], stats["total"]["people"]) == (1, 1, 1)
    by_source = {x["key"]: x for x in stats["rows"]}
    assert (by_source["national_platform"]["leads"], by_source["national_platform"]["merged"]) == (1, 0)
    assert (by_source["provincial_center"]["leads"], by_source["provincial_center"]["merged"]) == (0, 1)
    assert stats["total"]["sms_sent"] <= 1


async def test_a_more_urgent_warning_raises_the_work(client, source_headers, commander, run_worker, sync_engine):
    """The platform's call warning (P1, nonlocal: calls only) is being worked when the bank sees the
    money moving (P0): the bank's lead joins it, and the work becomes P0 with its squad and deadlines."""
    work = await push(client, source_headers, lead_of("P1", pushed_at=_at(0), subject=PERSON, fraud_type="fake_loan"))
    await run_worker()
    assert _count(sync_engine, Visit, Visit.lead_id == work) == 0
    bank = lead_of("P0", source="bank_fund_monitor", pushed_at=_at(1), subject={**PERSON, "residency": "nonlocal"},
                   fraud_type="fake_loan")
    later = lead_row(sync_engine, work).received_at + timedelta(hours=1)
    with clock.frozen(later):
        joined = await push(client, source_headers, bank)
        await run_worker()
    w, j = lead_row(sync_engine, work), lead_row(sync_engine, joined)
    assert (j.merged_into, j.status, j.outcome, j.tier) == (work, "closed", "duplicate", "P0")
    assert w.tier == "P0" and w.tier_detail["policy"]["tier"] == "P1"
    assert w.tier_detail["override"]["reason"] == f"merged lead {joined}"
    (raised,) = events(sync_engine, work, "tier_raised")
    assert (raised.data["from"], raised.data["to"], raised.data["reason"]) == ("P1", "P0", f"merged lead {joined}")
    with sync_engine.connect() as conn:
        due = dict(conn.execute(select(LeadDeadline.name, LeadDeadline.due_at).where(
            LeadDeadline.lead_id == work, LeadDeadline.state == "pending")).all())
    assert {"on_scene", "sign", "first_call"} <= set(due)  # P0's promises, counted from the raise ...
    assert due["on_scene"] == later + timedelta(minutes=30)
    assert due["first_call"] <= later + timedelta(minutes=5)  # ... never later than P1's own
    assert _count(sync_engine, Visit, Visit.lead_id == work) == 1  # P0 sends a squad: the work's visit
    assert _count(sync_engine, Visit, Visit.lead_id == joined) == 0
    assert _count(sync_engine, SmsMessage, SmsMessage.lead_id == joined) == 0


@pytest.mark.parametrize("first, second, joins", [
    ("P2", {"pushed_at": _at(7)}, False),  # outside the 6 h window
    ("P1", {"pushed_at": _at(2)}, False),  # another scam (online_shopping, fake_loan before), less urgent
    ("P1", {"pushed_at": _at(2), "risk_level": 3, "fraud_type": "fake_loan"}, True),  # the same scam, less urgent
    ("P2", {"pushed_at": _at(-2), "fraud_type": "online_dating"}, True),  # as urgent, pushed before, arrived after
])
async def test_what_joins_the_open_work(first, second, joins, client, source_headers, run_worker, sync_engine):
    work = await push(client, source_headers, lead_of(first, pushed_at=_at(0), subject=PERSON, fraud_type="fake_loan"
                                                      if first == "P1" else "online_shopping"))
    await run_worker()
    other = await push(client, source_headers, lead_of("P2", subject=PERSON, **second))
    await run_worker()
    assert lead_row(sync_engine, other).merged_into == (work if joins else None)
    assert (lead_row(sync_engine, other).status == "closed") is joins
    assert _count(sync_engine, SmsMessage, SmsMessage.lead_id == other) == (0 if joins else 1)  # P2, P3: an SMS


async def test_closed_work_is_not_joined(client, source_headers, commander,
                                                                       run_worker, sync_engine):
    first = await push(client, source_headers, lead_of("P2", pushed_at=_at(0), subject=PERSON))
    await run_worker()
    assert (await client.post(f"/api/v1/leads/{first}/close", headers=commander,
                              json={"outcome": "dissuaded"})).status_code == 200
    second = await push(client, source_headers, lead_of("P2", pushed_at=_at(1), subject=PERSON))
    await run_worker()
    assert lead_row(sync_engine, second).merged_into is None and lead_row(sync_engine, second).status == "tiered"
    with sync_engine.connect() as conn:  # both are the person's warnings
        assert conn.execute(text("SELECT count(DISTINCT person_id) FROM lead")).scalar() == 1
