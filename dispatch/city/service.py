"""Handovers between the districts of a city (移交 → 接收): a lead a district (or the city center)
judges not its own is handed to a named district with a reason; the sender stays accountable (it
still owns the lead) until the receiver accepts. Refused, it stays with the sender; unanswered by
`transfer.accept_within`, it comes back to the city center (the flow raises the alarm). With
`transfer.review`, an operator's handover first waits for a commander of the sending district.

These functions change the `lead_transfer` rows and the lead's owner (`lead.district_code`) only;
the deadline row, the alarm and the field work are the flows' (`dispatch.flows`)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session

from dispatch import outbox
from dispatch.access import is_city, transfers_visible
from dispatch.enums import LeadStatus
from dispatch.models import Lead, LeadTransfer
from dispatch.policy import Policy
from dispatch.states import LEAD
from dispatch.timeline import record
from geo.models import District
from service.core import clock
from service.core.auth import Principal, Role
from service.core.errors import Conflict, Forbidden, NotFound

REVIEW, PENDING, ACCEPTED, REFUSED, EXPIRED, CANCELLED = "review", "pending", "accepted", "refused", "expired", \
    "cancelled"
OPEN = (REVIEW, PENDING)
DEADLINE = "transfer_accept"  # the lead_deadline row the sweep acts on


def is_district(session: Session, code: str) -> bool:
    """Is `code` a district of this city (a handover), not some other unit (移交 outside)?"""
    return session.get(District, code) is not None


def open_transfer(session: Session, lead_id: int) -> LeadTransfer | None:
    return session.execute(select(LeadTransfer).where(LeadTransfer.lead_id == lead_id, LeadTransfer.state.in_(OPEN))
                           .with_for_update()).scalar()


def public(t: LeadTransfer) -> dict:
    return {"id": t.id, "lead_id": t.lead_id, "from": t.from_district, "to": t.to_district, "reason": t.reason,
            "state": t.state, "requested_by": t.requested_by, "requested_at": clock.iso(t.requested_at),
            "reviewed_by": t.reviewed_by, "reviewed_at": clock.iso(t.reviewed_at), "due_at": clock.iso(t.due_at),
            "answered_by": t.answered_by, "answered_at": clock.iso(t.answered_at), "answer_reason": t.answer_reason}


def _board(session: Session, t: LeadTransfer, type_: str) -> None:
    """The screens of both districts (and the city's) hear of it."""
    data = public(t)
    outbox.board(session, type_, data, district=t.from_district)
    if t.to_district != t.from_district:
        outbox.board(session, type_, data, district=t.to_district, city=False)


def _wait(t: LeadTransfer, policy: Policy, now: datetime) -> None:
    t.state, t.due_at = PENDING, now + policy.transfer.accept_within


def request(session: Session, lead: Lead, to: str, reason: str, who: Principal, policy: Policy) -> LeadTransfer:
    """Hand `lead` (locked) to district `to`: waiting for its acceptance, or first for a commander's
    review when the policy asks it of an operator's handover."""
    if to == lead.district_code:
        raise Conflict(f"lead {lead.id} is district {to}'s already")
    if not LEAD.can(lead.status, LeadStatus.transferred):
        raise Conflict(f"lead {lead.id} is {lead.status}: it cannot be handed over now")
    if open_transfer(session, lead.id) is not None:
        raise Conflict(f"lead {lead.id} is being handed over already")
    now = clock.now()
    t = LeadTransfer(lead_id=lead.id, from_district=lead.district_code, to_district=to, reason=reason, state=REVIEW,
                     requested_by=who.name, requested_at=now)
    if not (policy.transfer.review and who.role == Role.operator):
        _wait(t, policy, now)
    session.add(t)
    session.flush()
    record(session, lead.id, who.actor, "transfer_requested", {"transfer_id": t.id, "from": t.from_district,
                                                               "to": to, "reason": reason, "state": t.state,
                                                               "due_at": clock.iso(t.due_at)})
    _board(session, t, "transfer.requested")
    return t


def _locked(session: Session, transfer_id: int) -> LeadTransfer:
    t = session.execute(select(LeadTransfer).where(LeadTransfer.id == transfer_id).with_for_update()).scalar()
    if t is None:
        raise NotFound(f"transfer {transfer_id} not found")
    return t


def review(session: Session, transfer_id: int, approve: bool, note: str | None, who: Principal,
           policy: Policy) -> LeadTransfer:
    """A commander of the sending district (or of the city) approves an operator's handover (it now
    waits for the receiver) or stops it (cancelled: the lead stays)."""
    t = _locked(session, transfer_id)
    if not (is_city(who) or who.district in (t.from_district, t.to_district)):
        raise NotFound(f"transfer {transfer_id} not found")
    if not (is_city(who) or who.district == t.from_district):
        raise Forbidden("only the sending district reviews its handovers")
    if t.state != REVIEW:
        raise Conflict(f"transfer {transfer_id} is {t.state}: nothing to review")
    now = clock.now()
    t.reviewed_by, t.reviewed_at = who.name, now
    if approve:
        _wait(t, policy, now)
    else:
        t.state, t.answer_reason = CANCELLED, note
    record(session, t.lead_id, who.actor, "transfer_reviewed", {"transfer_id": t.id, "approved": approve,
                                                                "note": note, "due_at": clock.iso(t.due_at)})
    _board(session, t, "transfer.updated")
    return t


def _pending_for(session: Session, lead: Lead, who: Principal) -> LeadTransfer:
    t = open_transfer(session, lead.id)
    if t is None or t.state != PENDING:
        raise Conflict(f"lead {lead.id} is not waiting for a district to accept it")
    if not (is_city(who) or who.district == t.to_district):
        raise Forbidden(f"only district {t.to_district} (or the city center) answers this handover")
    return t


def accept(session: Session, lead: Lead, who: Principal) -> LeadTransfer:
    """接收: the receiving district owns the lead from now on."""
    t = _pending_for(session, lead, who)
    t.state, t.answered_by, t.answered_at = ACCEPTED, who.name, clock.now()
    lead.district_code = t.to_district
    record(session, lead.id, who.actor, "transfer_accepted", {"transfer_id": t.id, "from": t.from_district,
                                                              "to": t.to_district})
    _board(session, t, "transfer.updated")
    return t


def refuse(session: Session, lead: Lead, reason: str, who: Principal) -> LeadTransfer:
    """The receiving district says no (with its reason): the sender keeps the lead."""
    t = _pending_for(session, lead, who)
    t.state, t.answered_by, t.answered_at, t.answer_reason = REFUSED, who.name, clock.now(), reason
    record(session, lead.id, who.actor, "transfer_refused", {"transfer_id": t.id, "to": t.to_district,
                                                             "reason": reason})
    _board(session, t, "transfer.updated")
    return t


def expire(session: Session, lead: Lead, now: datetime) -> LeadTransfer | None:
    """Nobody accepted in time: the lead comes back to the city center (no district) — the flow raises
    the alarm. None when the handover was answered meanwhile."""
    t = open_transfer(session, lead.id)
    if t is None or t.state != PENDING:
        return None
    t.state, t.answered_at = EXPIRED, now
    was = lead.district_code
    lead.district_code = None
    record(session, lead.id, "sweep", "transfer_expired", {"transfer_id": t.id, "from": t.from_district,
                                                           "to": t.to_district, "returned_to": "city",
                                                           "was_owned_by": was})
    _board(session, t, "transfer.updated")
    return t


def cancel_open(session: Session, lead_id: int, why: str) -> int:
    """The lead ended (closed, handed outside): a handover still open ends with it."""
    ids = list(session.execute(update(LeadTransfer).where(LeadTransfer.lead_id == lead_id,
                                                          LeadTransfer.state.in_(OPEN))
                               .values(state=CANCELLED, answer_reason=why).returning(LeadTransfer.id)).scalars())
    if ids:
        record(session, lead_id, "system", "transfer_cancelled", {"transfer_ids": ids, "why": why})
    return len(ids)


def list_transfers(session: Session, who: Principal, direction: str, state: str | None, limit: int) -> list[dict]:
    q = select(LeadTransfer).where(transfers_visible(who, direction)).order_by(LeadTransfer.id.desc()).limit(limit)
    if state is not None:
        q = q.where(LeadTransfer.state == state)
    return [public(t) for t in session.execute(q).scalars()]
