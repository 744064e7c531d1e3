"""见面劝阻 required for a lead: the record the ladder asks for and field dispatch fulfils.

`request_visit` is the one way a visit becomes required (the tier policy, an escalation of the
ladder, the center), always with the deadline the ladder promised; the visit is offered to a squad
after the commit (the outbox). `end_field_work` is what a lead's end means in the field: visits
cancelled and open offers withdrawn, in the same transaction as the close or the transfer."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from dispatch import outbox
from dispatch.enums import VisitStatus
from dispatch.field.offers import withdraw
from dispatch.models import Assignment, Lead, Visit
from dispatch.states import OPEN_ASSIGNMENT, OPEN_VISIT, VISIT
from dispatch.timeline import record
from service.core import clock

REQUIRED = (*OPEN_VISIT, VisitStatus.failed)  # asked for and not done: a phone call does not settle it


def visit_still_required(session: Session, lead_id: int) -> bool:
    """Is a face-to-face visit asked for and not done? Open, or `failed` (no squad took it: back
    with the center, who must assign one) — either way a phone call does not settle the lead."""
    return session.execute(select(Visit.id).where(Visit.lead_id == lead_id, Visit.status.in_(REQUIRED))
                           .limit(1)).first() is not None


def required_visit(session: Session, lead_id: int) -> Visit | None:
    """The visit asked for and not done: open, or failed (with the center, who assigns a squad)."""
    return session.execute(select(Visit).where(Visit.lead_id == lead_id, Visit.status.in_(REQUIRED))
                           .order_by(Visit.id.desc()).limit(1)).scalar()


def open_visit(session: Session, lead_id: int) -> Visit | None:
    return session.execute(select(Visit).where(Visit.lead_id == lead_id, Visit.status.in_(OPEN_VISIT))).scalar()


def request_visit(session: Session, lead: Lead, reason: str, *, actor: str = "worker",
                  due_at: datetime | None = None, first: bool = False) -> tuple[Visit, bool]:
    """Make a face-to-face visit required for `lead` → (the visit, whether it is new). An open visit
    is returned as is (`first`: the lead's work starts now, so none can be open — not looked for).
    The caller commits; the outbox offers a new visit to a squad after that."""
    visit = None if first else open_visit(session, lead.id)
    if visit is not None:
        return visit, False
    visit = Visit(lead_id=lead.id, reason=reason, requested_by=actor, requested_at=clock.now(), due_at=due_at,
                  status=VisitStatus.waiting.value)
    session.add(visit)
    session.flush()
    record(session, lead.id, actor, "visit_requested",
           {"visit_id": visit.id, "reason": reason, "due_at": clock.iso(due_at)})
    outbox.visit_needs_squad(session, visit)
    return visit, True


def end_field_work(session: Session, lead: Lead, actor: str, why: str) -> dict:
    """The lead ended (closed, transferred): its visits that are not done are cancelled and its open
    offers and assignments withdrawn, their squads told at once → what was ended."""
    visits = session.execute(select(Visit).where(Visit.lead_id == lead.id, Visit.status.in_(REQUIRED))
                             .with_for_update(key_share=True)).scalars().all()
    ended = {"visits": [], "assignments": []}
    for v in visits:
        open_ = session.execute(select(Assignment).where(Assignment.visit_id == v.id,
                                                         Assignment.status.in_(OPEN_ASSIGNMENT))
                                .with_for_update(key_share=True)).scalars().all()
        for a in open_:
            withdraw(session, a, lead, actor, why)
            ended["assignments"].append(a.id)
        VISIT.move(v, VisitStatus.cancelled)
        record(session, lead.id, actor, "visit_cancelled", {"visit_id": v.id, "reason": why})
        ended["visits"].append(v.id)
    return ended

