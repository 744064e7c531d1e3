"""Handovers (移交), flows over the city, the ladder and the field, in the caller's one transaction:

    transfer_lead    to a district of the city: a handover waiting for its acceptance (accept_transfer,
                     refuse_transfer, review_transfer; unanswered, flows.sweep_deadlines gives it back
                     to the city center with an alarm); to another unit: transferred → deadlines
                     cancelled, the lead's field work ended
"""
from __future__ import annotations

from sqlmodel import Session

from dispatch.city import service as city
from dispatch.field.visits import end_field_work
from dispatch.flows import escalate_to_visit
from dispatch.ladder import deadlines
from dispatch.ladder import service as ladder
from dispatch.models import Lead
from dispatch.policy import Policy
from dispatch.shift import alarms
from dispatch.states import ACTIVE_LEAD
from service.core.auth import Principal, Role
from service.core.errors import Forbidden


def transfer_lead(session: Session, lead_id: int, to: str, reason: str, who: Principal, policy: Policy) -> Lead:
    """移交: to a district of the city, a handover that waits for that district's acceptance (the
    sender keeps the lead and its work meanwhile; the acceptance is due by `transfer.accept_within`);
    to any other unit (admin, commander), no more work here, and none in the field."""
    lead = ladder.lock_lead(session, lead_id)
    if city.is_district(session, to):
        t = city.request(session, lead, to, reason, who, policy)
        if t.state == city.PENDING:
            deadlines.reset_deadline(session, lead.id, city.DEADLINE, t.due_at)
        return lead
    if who.role not in (Role.admin, Role.commander):
        raise Forbidden(f"{to!r} is no district of the city: only a commander transfers a lead outside it")
    ladder.transfer_lead(session, lead, to, reason, who.actor)
    city.cancel_open(session, lead.id, "lead_transferred")
    end_field_work(session, lead, who.actor, "lead_transferred")
    alarms.resolve(session, lead.id, None, policy, "lead_transferred")
    return lead


def review_transfer(session: Session, transfer_id: int, approve: bool, note: str | None, who: Principal,
                    policy: Policy):
    """A commander of the sending district approves an operator's handover (the receiver's time starts)
    or stops it."""
    t = city.review(session, transfer_id, approve, note, who, policy)
    if t.state == city.PENDING:
        ladder.lock_lead(session, t.lead_id)
        deadlines.reset_deadline(session, t.lead_id, city.DEADLINE, t.due_at)
    return t


def accept_transfer(session: Session, lead_id: int, who: Principal, policy: Policy) -> Lead:
    """接收: the receiving district owns the lead. The sending district's squads stop (their offers
    withdrawn); a visit it still needed is asked of the receiving district's squads."""
    lead = ladder.lock_lead(session, lead_id)
    city.accept(session, lead, who)
    deadlines.mark_met(session, lead.id, city.DEADLINE)
    alarms.resolve(session, lead.id, (city.DEADLINE,), policy, "transfer_accepted")
    ended = end_field_work(session, lead, who.actor, "lead_handed_over")
    lead.assigned_team = None
    if ended["visits"] and lead.status in ACTIVE_LEAD:
        escalate_to_visit(session, lead, "transfer_accepted", policy, who.actor)
    ladder.touch(session, lead)
    return lead


def refuse_transfer(session: Session, lead_id: int, reason: str, who: Principal, policy: Policy) -> Lead:
    """The receiving district refuses: the sender keeps the lead (and its work)."""
    lead = ladder.lock_lead(session, lead_id)
    city.refuse(session, lead, reason, who)
    deadlines.cancel_deadlines(session, lead.id, (city.DEADLINE,))
    alarms.resolve(session, lead.id, (city.DEADLINE,), policy, "transfer_refused")
    ladder.touch(session, lead)
    return lead
