"""Deadlines are rows, not timers (`lead_deadline`): written when a promise is made (tiering, an
escalation, a close), met by the step that keeps it, and acted on by the workers' sweep when it
is missed. Every state change follows `dispatch.states.DEADLINE`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, case, column, func, select, update, values
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from dispatch.enums import DeadlineState
from dispatch.ladder.rules import Step, after_missed
from dispatch.models import Lead, LeadDeadline
from dispatch.policy import Policy
from dispatch.states import DEADLINE
from dispatch.timeline import record_many
from service.core import clock

PENDING = DeadlineState.pending.value


def write_deadlines(session: Session, lead_id: int, plan: dict[str, datetime], *, replace: bool = False,
                    tighten: bool = False) -> None:
    """Insert deadline rows; `replace` gives a row of the same name that was not met a new due time
    (pending again: a new promise; the miss stays in the audit trail); `tighten` also brings a pending
    row's due time forward when the plan's is earlier (a more urgent tier never loosens a promise)."""
    if not plan:
        return
    stmt = insert(LeadDeadline).values([{"lead_id": lead_id, "name": n, "due_at": t, "state": PENDING}
                                        for n, t in plan.items()])
    if replace:
        states = DEADLINE.sources(DeadlineState.pending) + ((PENDING,) if tighten else ())
        due = case((LeadDeadline.state == PENDING, func.least(LeadDeadline.due_at, stmt.excluded.due_at)),
                   else_=stmt.excluded.due_at)
        stmt = stmt.on_conflict_do_update(
            index_elements=["lead_id", "name"],
            set_={"due_at": due, "state": PENDING, "acted_at": None, "met_at": None},
            where=LeadDeadline.state.in_(states))
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["lead_id", "name"])
    session.execute(stmt)


def add_deadlines(session: Session, lead: Lead, plan: dict[str, datetime]) -> None:
    """The rows of a freshly tiered lead, added to the unit of work (no round trip: the flush writes
    a job's leads in a few multi-row INSERTs). A sign already given counts as met."""
    for name, due in plan.items():
        signed = name == "sign" and lead.signed_at is not None  # signed before the worker tiered it
        session.add(LeadDeadline(lead_id=lead.id, name=name, due_at=due,
                                 state=DeadlineState.met.value if signed else PENDING,
                                 met_at=lead.signed_at if signed else None))


def mark_met(session: Session, lead_id: int, name: str, at: datetime | None = None) -> bool:
    """The step named `name` happened: a pending deadline becomes `met` (True); a missed one only
    records when it was done after all (False)."""
    return lead_id in mark_met_many(session, name, {lead_id: at or clock.now()})


def mark_met_many(session: Session, name: str, done: dict[int, datetime]) -> set[int]:
    """`mark_met` for many leads in one statement (two when some deadline was missed): {lead id: when
    the step named `name` happened} → the leads whose pending deadline became `met`."""
    if not done:
        return set()
    at = _when("done", list(done.items()))
    met = set(session.execute(update(LeadDeadline).where(
        LeadDeadline.lead_id == at.c.lead_id, LeadDeadline.name == name,
        LeadDeadline.state.in_(DEADLINE.sources(DeadlineState.met)))
        .values(state=DeadlineState.met.value, met_at=at.c.at).returning(LeadDeadline.lead_id)
        .execution_options(synchronize_session="fetch")).scalars())
    if len(met) < len(done):
        late = _when("late", [(lead_id, when) for lead_id, when in done.items() if lead_id not in met])
        session.execute(update(LeadDeadline).where(
            LeadDeadline.lead_id == late.c.lead_id, LeadDeadline.name == name,
            LeadDeadline.state == DeadlineState.missed.value, LeadDeadline.met_at.is_(None))
            .values(met_at=late.c.at).execution_options(synchronize_session="fetch"))
    return met


def _when(name: str, rows: list[tuple[int, datetime]]):
    """(lead id, time) rows as a VALUES list to join an UPDATE on."""
    return values(column("lead_id", BigInteger), column("at", DateTime(timezone=True)), name=name).data(rows)


def cancel_deadlines(session: Session, lead_id: int, names: tuple[str, ...] | None = None) -> list[str]:
    """Pending deadlines that no longer apply (all, or those named) → cancelled; their names."""
    q = update(LeadDeadline).where(LeadDeadline.lead_id == lead_id,
                                   LeadDeadline.state.in_(DEADLINE.sources(DeadlineState.cancelled)))
    if names is not None:
        q = q.where(LeadDeadline.name.in_(names))
    return list(session.execute(q.values(state=DeadlineState.cancelled.value).returning(LeadDeadline.name))
                .scalars())


def reset_deadline(session: Session, lead_id: int, name: str, due_at: datetime) -> None:
    """A promise made again (a callback after a reopened lead closes once more): pending, due anew."""
    session.execute(insert(LeadDeadline).values(lead_id=lead_id, name=name, due_at=due_at, state=PENDING)
                    .on_conflict_do_update(index_elements=["lead_id", "name"],
                                           set_={"due_at": due_at, "state": PENDING, "met_at": None,
                                                 "acted_at": None}))


def deadlines_of(session: Session, lead_id: int) -> list[LeadDeadline]:
    return list(session.execute(select(LeadDeadline).where(LeadDeadline.lead_id == lead_id)
                                .order_by(LeadDeadline.due_at, LeadDeadline.name)
                                .execution_options(populate_existing=True)).scalars())


@dataclass(frozen=True, slots=True)
class MissedRow:
    id: int
    lead_id: int
    name: str
    due_at: datetime


@dataclass(frozen=True, slots=True)
class Missed:
    count: int  # deadlines marked missed
    steps: list[tuple[int, Step]]  # (lead id, the step the ladder takes), for the caller's flow
    rows: list[MissedRow] = ()  # what was missed (the flow raises an alarm for each)


def claim_missed(session: Session, now: datetime, policy: Policy, limit: int) -> Missed:
    """Up to `limit` due deadlines become `missed`, each with a `deadline_missed` event, and the
    steps the ladder takes for them (a flow applies them). Rows are claimed with FOR UPDATE SKIP
    LOCKED in the UPDATE itself, so two workers never act on the same row; no lead is locked here."""
    claim = (select(LeadDeadline.id).where(LeadDeadline.state == PENDING, LeadDeadline.due_at <= now)
             .order_by(LeadDeadline.due_at).limit(limit).with_for_update(skip_locked=True))
    missed = session.execute(update(LeadDeadline).where(LeadDeadline.id.in_(claim.scalar_subquery()))
                             .values(state=DeadlineState.missed.value, acted_at=now)
                             .returning(LeadDeadline.id, LeadDeadline.lead_id, LeadDeadline.name,
                                        LeadDeadline.due_at)).all()
    if not missed:
        return Missed(0, [])
    tiers = dict(session.execute(select(Lead.id, Lead.tier).where(Lead.id.in_({m.lead_id for m in missed}))).all())
    steps = {(m.lead_id, m.name): after_missed(policy, m.name, tiers.get(m.lead_id)) for m in missed}
    record_many(session, [
        {"lead_id": m.lead_id, "actor": "sweep", "kind": "deadline_missed", "at": now,
         "data": {"name": m.name, "due_at": clock.iso(m.due_at),
                  "rule": s.rule if (s := steps[(m.lead_id, m.name)]) else None,
                  "step": s.kind if s else None}} for m in missed])
    return Missed(len(missed), [(lead_id, step) for (lead_id, _n), step in sorted(steps.items()) if step],
                  [MissedRow(m.id, m.lead_id, m.name, m.due_at) for m in missed])
