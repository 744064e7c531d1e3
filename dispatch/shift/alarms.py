"""告警 that escalate, as an on-call system pages: a missed deadline raises an alarm on every center
screen; nobody acknowledges it within the policy's `escalate_after` (shorter for P0) → it climbs to
the next level (`alarms.levels`: the duty officer, the duty commander, the center's head); the
step done after all, or the lead ended, resolves it. Every change is a timeline event and a board
message (`alarm.raised`, `alarm.updated`) that leaves with the commit."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, true, update
from sqlmodel import Session

from dispatch import outbox
from dispatch.models import Alarm, Lead
from dispatch.policy import Policy
from dispatch.timeline import record, record_many
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class Miss:
    """One missed deadline an alarm is raised for."""
    lead_id: int
    kind: str
    due_at: datetime | None = None
    deadline_id: int | None = None
    team_code: str | None = None
    assignment_id: int | None = None
    data: dict | None = None


def public(a: Alarm, policy: Policy, lead: Lead | None = None) -> dict:
    levels = policy.shift.alarm_levels
    out = {"id": a.id, "lead_id": a.lead_id, "kind": a.kind, "tier": a.tier, "level": a.level,
           "level_name": levels[min(a.level, len(levels)) - 1], "raised_at": clock.iso(a.raised_at),
           "due_at": clock.iso(a.due_at), "escalate_at": clock.iso(a.escalate_at), "team_code": a.team_code,
           "assignment_id": a.assignment_id, "acked_at": clock.iso(a.acked_at), "acked_by": a.acked_by,
           "resolved_at": clock.iso(a.resolved_at), "data": a.data}
    if lead is not None:
        out |= {"street_code": lead.street_code, "beat_code": lead.beat_code}
    return out


def _district(lead: Lead | None) -> str | None:
    """The district whose screens see the lead's alarms (None: the city center's only)."""
    return lead.district_code if lead is not None else None


def _next_escalation(policy: Policy, level: int, tier: str | None, now: datetime) -> datetime | None:
    return now + policy.shift.escalation_delay(tier) if level < len(policy.shift.alarm_levels) else None


def raise_alarms(session: Session, misses: list[Miss], policy: Policy, now: datetime | None = None) -> list[Alarm]:
    if not misses:
        return []
    now = now or clock.now()
    leads = {x.id: x for x in session.execute(select(Lead).where(Lead.id.in_({m.lead_id for m in misses}))).scalars()}
    made = []
    for m in misses:
        lead = leads.get(m.lead_id)
        tier = lead.tier if lead else None
        a = Alarm(lead_id=m.lead_id, kind=m.kind, tier=tier, deadline_id=m.deadline_id, due_at=m.due_at,
                  team_code=m.team_code, assignment_id=m.assignment_id, raised_at=now, level=1,
                  escalate_at=_next_escalation(policy, 1, tier, now), data=m.data or {})
        session.add(a)
        made.append(a)
    session.flush()
    record_many(session, [{"lead_id": a.lead_id, "actor": "sweep", "kind": "alarm_raised", "at": now,
                           "data": {"alarm_id": a.id, "kind": a.kind, "level": a.level, "team_code": a.team_code}}
                          for a in made])
    for a in made:
        outbox.board(session, "alarm.raised", public(a, policy, leads.get(a.lead_id)), district=_district(leads.get(a.lead_id)))
    return made


def escalate_due(session: Session, policy: Policy, now: datetime | None = None, limit: int = 500) -> int:
    """Unacknowledged alarms past `escalate_at` → one level up (claimed with SKIP LOCKED: two workers
    never climb the same alarm twice)."""
    now = now or clock.now()
    rows = session.execute(select(Alarm).where(Alarm.acked_at.is_(None), Alarm.resolved_at.is_(None),
                                               Alarm.escalate_at <= now)
                           .order_by(Alarm.escalate_at).limit(limit).with_for_update(skip_locked=True)).scalars().all()
    for a in rows:
        a.level += 1
        a.escalate_at = _next_escalation(policy, a.level, a.tier, now)
        record(session, a.lead_id, "sweep", "alarm_escalated",
               {"alarm_id": a.id, "kind": a.kind, "level": a.level,
                "to": policy.shift.alarm_levels[min(a.level, len(policy.shift.alarm_levels)) - 1]})
        lead = session.get(Lead, a.lead_id)
        outbox.board(session, "alarm.updated", public(a, policy, lead), district=_district(lead))
    return len(rows)


def acknowledge(session: Session, alarm_id: int, who: Principal, policy: Policy) -> dict:
    a = session.execute(select(Alarm).where(Alarm.id == alarm_id).with_for_update()).scalar()
    if a is None:
        raise NotFound(f"alarm {alarm_id} not found")
    if a.acked_at is not None:
        raise Conflict(f"alarm {alarm_id} was acknowledged by {a.acked_by} at {clock.iso(a.acked_at)}")
    if a.resolved_at is not None:
        raise Conflict(f"alarm {alarm_id} was resolved at {clock.iso(a.resolved_at)}: the step was done")
    a.acked_at, a.acked_by, a.escalate_at = clock.now(), who.name, None
    record(session, a.lead_id, who.actor, "alarm_acked", {"alarm_id": a.id, "kind": a.kind, "level": a.level})
    lead = session.get(Lead, a.lead_id)
    outbox.board(session, "alarm.updated", public(a, policy, lead), district=_district(lead))
    return public(a, policy, lead)


def resolve(session: Session, lead_id: int, kinds: tuple[str, ...] | None, policy: Policy, why: str) -> int:
    """The lead's active alarms (all, or of `kinds`) end: the step was done after all, or the lead ended."""
    q = update(Alarm).where(Alarm.lead_id == lead_id, Alarm.acked_at.is_(None), Alarm.resolved_at.is_(None))
    if kinds is not None:
        q = q.where(Alarm.kind.in_(kinds))
    now = clock.now()
    ids = list(session.execute(q.values(resolved_at=now, escalate_at=None).returning(Alarm.id)).scalars())
    if ids:
        district = _district(session.get(Lead, lead_id))
        for a in session.execute(select(Alarm).where(Alarm.id.in_(ids)).execution_options(
                populate_existing=True)).scalars():
            outbox.board(session, "alarm.updated", public(a, policy) | {"resolved": why}, district=district)
        record(session, lead_id, "system", "alarm_resolved", {"alarm_ids": ids, "why": why})
    return len(ids)


def active(session: Session, policy: Policy, limit: int, visible=None) -> list[dict]:
    """Active alarms, highest level first, then the most urgent tier, then the oldest; `visible`: the
    caller's leads (dispatch.access.owned_leads), None for all."""
    rows = session.execute(select(Alarm, Lead).join(Lead, Lead.id == Alarm.lead_id).where(
        Alarm.acked_at.is_(None), Alarm.resolved_at.is_(None), true() if visible is None else visible)
        .order_by(Alarm.level.desc(), Alarm.tier.asc().nulls_last(), Alarm.raised_at, Alarm.id).limit(limit)).all()
    return [public(a, policy, lead) for a, lead in rows]
