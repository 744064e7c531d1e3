"""The squads' answers (接单, 拒单, 到场, 完成) and the center's assign (指派), on a sync `Session`:
the workers call them directly, the API through `AsyncSession.run_sync` — one implementation for
REST, the socket and the sweep. Services never commit; what a lead's end or a completed visit
means for the ladder is in `dispatch.flows`."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlmodel import Session

from dispatch.access import (
    is_center,
    may_act_on_assignment,
    may_read_assignment,
    readable_assignments,
    readable_teams,
)
from dispatch.enums import AssignmentStatus, LeadStatus, Outcome, TeamStatus, VisitStatus
from dispatch.field.offers import (
    assignment_public,
    board_lead,
    board_team,
    lock_visit,
    offer_next,
    reoffer,
    updated,
    withdraw,
)
from dispatch.field.squads import FieldConfig, load_squads
from dispatch.field.visits import request_visit
from dispatch.models import Assignment, Lead, OfferDelivery, Team, Visit
from dispatch.states import ASSIGNMENT, LEAD, OPEN_VISIT, VISIT, require
from dispatch.timeline import record
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, NotFound, ValidationFailed
from service.core.money import cny

A, V = AssignmentStatus, VisitStatus


@dataclass(frozen=True, slots=True)
class Completion:
    outcome: Outcome
    met_in_person: bool
    note: str | None = None
    loss_cny: Decimal | None = None
    saved_cny: Decimal | None = None
    checklist: dict | None = None
    at: datetime | None = None  # when, by the phone (made offline)


def _lock_assignment(session: Session, assignment_id: int, who: Principal) -> Assignment:
    a = session.execute(select(Assignment).where(Assignment.id == assignment_id)
                        .with_for_update(key_share=True)).scalar()
    if a is None or not may_act_on_assignment(who, a, session):
        raise NotFound(f"assignment {assignment_id} not found")  # another squad's work does not exist for you
    return a


def _need(a: Assignment, *states: AssignmentStatus) -> None:
    if a.status not in states:
        raise Conflict(f"assignment {a.id} is {a.status}; this needs {' or '.join(states)}")


def _lead(session: Session, lead_id: int) -> Lead:
    return session.execute(select(Lead).where(Lead.id == lead_id).with_for_update(key_share=True)).scalar_one()


PHONE_CLOCK_AHEAD_S = 60  # a phone's clock may run this far ahead of the server's


def phone_time(at: datetime | None, now: datetime, not_before: datetime | None, what: str) -> datetime:
    """When a squad did something, by the phone (an action made offline and sent later): not in the
    future beyond the phone's clock drift, not before the step it follows. None → now."""
    if at is None:
        return now
    if at.tzinfo is None:
        raise ValidationFailed([{"field": "at", "message": "needs a time zone (e.g. +08:00 or Z)"}])
    if at > now + timedelta(seconds=PHONE_CLOCK_AHEAD_S):
        raise ValidationFailed([{"field": "at", "message": f"{clock.iso(at)} is in the future"}])
    if not_before is not None and at < not_before:
        raise ValidationFailed([{"field": "at", "message": f"{clock.iso(at)} is before {what} "
                                                           f"({clock.iso(not_before)})"}])
    return min(at, now)


def accept(session: Session, assignment_id: int, who: Principal, at: datetime | None = None) -> dict:
    """接单: the first member's accept wins for the squad; another at the same time gets 409. A backup
    offer accepted leaves the visit with the squad that has it (both go; the first there counts)."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, A.offered)
    now = clock.now()
    when = phone_time(at, now, a.offered_at, "the offer")
    if when >= a.expires_at:
        raise Conflict(f"assignment {a.id} expired at {clock.iso(a.expires_at)}")
    ASSIGNMENT.move(a, A.accepted)
    a.accepted_by, a.accepted_at = who.name, when
    visit = lock_visit(session, a.visit_id)
    if visit.status == V.offered:
        VISIT.move(visit, V.assigned)
        visit.team_code = a.team_code
    lead = _lead(session, a.lead_id)
    lead.assigned_team = visit.team_code
    if lead.status == LeadStatus.tiered:
        LEAD.move(lead, LeadStatus.working)
    lead.updated_at = now
    session.execute(update(OfferDelivery).where(OfferDelivery.assignment_id == a.id,
                                                OfferDelivery.username == who.name,
                                                OfferDelivery.acked_at.is_(None)).values(acked_at=now))
    record(session, lead.id, who.actor, "accepted", {"assignment_id": a.id, "team_code": a.team_code})
    updated(session, a, lead)
    board_lead(session, lead, visit={"id": visit.id, "status": visit.status, "team_code": a.team_code},
               assignment_id=a.id)
    return assignment_public(a, lead)


def decline(session: Session, assignment_id: int, who: Principal, reason: str | None, cfg: FieldConfig,
            online=None) -> dict:
    """拒单: withdrawn from this squad and offered to the next one."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, A.offered)
    a.declined_reason = reason
    lead = session.get(Lead, a.lead_id)
    record(session, lead.id, who.actor, "declined", {"assignment_id": a.id, "team_code": a.team_code,
                                                     "reason": reason})
    reoffer(session, a, lead, cfg, online, "declined", A.declined)
    return assignment_public(a, lead)


def arrive(session: Session, assignment_id: int, who: Principal, at: datetime | None = None,
           checkin_every: timedelta | None = None) -> tuple[Assignment, Lead]:
    """到场 at the phone's time (the flow meets the on-scene deadline and sets the first check-in)."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, A.accepted)
    now = clock.now()
    ASSIGNMENT.move(a, A.arrived)
    a.arrived_at, a.arrived_received_at = phone_time(at, now, a.accepted_at, "the accept"), now
    if checkin_every is not None:
        a.checkin_due_at = a.arrived_at + checkin_every
    visit = lock_visit(session, a.visit_id)
    if visit.status == V.assigned:  # a backup squad may get there first
        VISIT.move(visit, V.arrived)
        visit.team_code = a.team_code
    lead = session.get(Lead, a.lead_id)
    record(session, lead.id, who.actor, "arrived", {"assignment_id": a.id, "team_code": a.team_code,
                                                    "at": clock.iso(a.arrived_at), "received_at": clock.iso(now)})
    updated(session, a, lead)
    board_lead(session, lead, visit={"id": visit.id, "status": visit.status, "team_code": a.team_code})
    return a, lead


def checkin(session: Session, assignment_id: int, who: Principal, at: datetime | None,
            every: timedelta) -> tuple[Assignment, Lead]:
    """报平安: the squad on scene is safe; the next check-in is due `every` later (the flow moves its deadline)."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, A.arrived)
    now = clock.now()
    a.checkin_at = phone_time(at, now, a.arrived_at, "the arrival")
    a.checkin_due_at = a.checkin_at + every
    lead = session.get(Lead, a.lead_id)
    record(session, lead.id, who.actor, "checkin", {"assignment_id": a.id, "team_code": a.team_code,
                                                    "at": clock.iso(a.checkin_at), "next_due_at": clock.iso(a.checkin_due_at)})
    updated(session, a, lead)
    board_lead(session, lead, checkin={"assignment_id": a.id, "at": clock.iso(a.checkin_at)})
    return a, lead


def complete(session: Session, assignment_id: int, who: Principal, c: Completion) -> tuple[Assignment, Lead]:
    """见面劝阻 done: the visit's outcome (the flow closes the lead with it)."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, A.arrived, A.accepted)
    now = clock.now()
    ASSIGNMENT.move(a, A.completed)
    done_at = phone_time(c.at, now, a.arrived_at or a.accepted_at, "the arrival")
    a.completed_at, a.completed_received_at, a.outcome, a.met_in_person = done_at, now, c.outcome, c.met_in_person
    a.note, a.loss_cny, a.saved_cny, a.checklist = c.note, c.loss_cny, c.saved_cny, c.checklist
    a.checkin_due_at = None
    if a.arrived_at is None:
        a.arrived_at = done_at
    visit = lock_visit(session, a.visit_id)
    VISIT.move(visit, V.done)
    visit.done_at, visit.met_in_person, visit.outcome = done_at, c.met_in_person, c.outcome
    visit.team_code = a.team_code
    lead = _lead(session, a.lead_id)
    record(session, lead.id, who.actor, "visit_completed",
           {"assignment_id": a.id, "team_code": a.team_code, "outcome": c.outcome, "met_in_person": c.met_in_person,
            "loss_cny": cny(c.loss_cny), "saved_cny": cny(c.saved_cny), "checklist": c.checklist})
    board_team(session, a.team_code, open_assignments_delta=-1)
    return a, lead


def assign(session: Session, lead_id: int, team_code: str, who: Principal, cfg: FieldConfig, online=None) -> dict:
    """The center offers the lead's visit to a squad of its choosing (the screen warns; the API does not
    refuse an off-duty or loaded squad). An open offer to another squad is withdrawn first."""
    lead = session.execute(select(Lead).where(Lead.id == lead_id).with_for_update(key_share=True)).scalar()
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    require(lead, "assign")
    if session.execute(select(Team.code).where(Team.code == team_code, readable_teams(who))).first() is None:
        raise ValidationFailed([{"field": "team_code", "message": f"no team {team_code!r}"}])  # nor another district's
    visit, _new = request_visit(session, lead, "center", actor=who.actor)
    visit = lock_visit(session, visit.id)
    if visit.status in (V.assigned, V.arrived):
        raise Conflict(f"visit {visit.id} is {visit.status} (squad {visit.team_code}); it cannot be reassigned now")
    if visit.status == V.offered:
        offers = session.execute(select(Assignment).where(Assignment.visit_id == visit.id,
                                                          Assignment.status == A.offered)
                                 .with_for_update(key_share=True)).scalars().all()
        held = next((a for a in offers if a.team_code == team_code and clock.now() < a.expires_at), None)
        if held is not None:  # the squad already holds the open offer: keep it (no second push, no second SMS)
            return assignment_public(held, lead)
        for a in offers:
            withdraw(session, a, lead, who.actor, "center_assign")
        VISIT.move(visit, V.waiting)
    squad = next(iter(load_squads(session, cfg, [team_code])))
    warnings = [w for w, bad in (("off_duty", squad.status != TeamStatus.on_duty),
                                 ("workload", squad.open_assignments >= cfg.workload_limit),
                                 ("stale_location", not squad.position.fresh)) if bad]
    why = {"team_code": team_code, "reason": "center", "by": who.name, "warnings": warnings, "next": []}
    a = offer_next(session, visit, cfg, online, who.actor, team_code=team_code, why=why)
    return assignment_public(a, lead)


# ---------------------------------------------------------------- reading assignments
def list_assignments(session: Session, who: Principal, mine: bool, status: str | None, team_code: str | None,
                     limit: int) -> list[dict]:
    q = (select(Assignment, Lead).join(Lead, Lead.id == Assignment.lead_id).where(readable_assignments(who))
         .order_by(Assignment.id.desc()).limit(limit))
    if mine and is_center(who):  # the center's own: accepted by me (a squad's own are all it sees)
        q = q.where(Assignment.accepted_by == who.name)
    if team_code:
        q = q.where(Assignment.team_code == team_code)
    if status:
        q = q.where(Assignment.status == status)
    rows = session.execute(q).all()
    ids = [a.id for a, _l in rows]
    by: dict[int, list[OfferDelivery]] = {}
    for d in session.execute(select(OfferDelivery).where(OfferDelivery.assignment_id.in_(ids))
                             .order_by(OfferDelivery.username)).scalars():
        by.setdefault(d.assignment_id, []).append(d)
    return [assignment_public(a, lead, by.get(a.id, [])) for a, lead in rows]


def get_assignment(session: Session, assignment_id: int, who: Principal) -> dict:
    a = session.get(Assignment, assignment_id)
    if a is None or not may_read_assignment(who, a, session):
        raise NotFound(f"assignment {assignment_id} not found")
    ds = session.execute(select(OfferDelivery).where(OfferDelivery.assignment_id == a.id)
                         .order_by(OfferDelivery.username)).scalars().all()
    return assignment_public(a, session.get(Lead, a.lead_id), list(ds))


def mark_pushed(session: Session, username: str, assignment_ids: list[int]) -> None:
    session.execute(update(OfferDelivery).where(OfferDelivery.username == username,
                                                OfferDelivery.assignment_id.in_(assignment_ids),
                                                OfferDelivery.pushed_at.is_(None)).values(pushed_at=clock.now()))


def mark_acked(session: Session, username: str, assignment_ids: list[int]) -> None:
    now = clock.now()
    session.execute(update(OfferDelivery).where(OfferDelivery.username == username,
                                                OfferDelivery.assignment_id.in_(assignment_ids),
                                                OfferDelivery.pushed_at.is_(None)).values(pushed_at=now))
    session.execute(update(OfferDelivery).where(OfferDelivery.username == username,
                                                OfferDelivery.assignment_id.in_(assignment_ids),
                                                OfferDelivery.acked_at.is_(None)).values(acked_at=now))


def field_stats(session: Session, district: str | None = None) -> dict:
    """The board's `stats`: open visits by status, offers out, squads by duty status — of the whole
    city, or of one district (its screens' own)."""
    def of(q, lead_id):
        return q if district is None else q.where(lead_id.in_(select(Lead.id).where(Lead.district_code == district)))
    visits = dict(session.execute(of(select(Visit.status, func.count()).where(
        Visit.status.in_(OPEN_VISIT)), Visit.lead_id).group_by(Visit.status)).all())
    teams = select(Team.status, func.count())
    if district is not None:
        teams = teams.where(Team.district_code == district)
    squads = dict(session.execute(teams.group_by(Team.status)).all())
    failed = session.execute(of(select(func.count()).select_from(Visit).where(Visit.status == V.failed),
                                Visit.lead_id)).scalar_one()
    return {"visits": visits, "visits_failed": failed, "squads": squads,
            "offers_out": session.execute(of(select(func.count()).select_from(Assignment).where(
                Assignment.status == A.offered), Assignment.lead_id)).scalar_one()}
