"""见面劝阻 requirements: the seam between the response ladder and field dispatch.

`request_visit` is the one way a visit becomes required — from the tier policy, an escalation
of the ladder (3 failed calls, no connection in time, invalid number) or the center. It creates
the visit row (one open visit per lead) and its audit event; field dispatch hooks its offer
after the caller's commit (`after_commit`)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from dispatch import events
from dispatch.models import LeadEvent, Visit
from service.core import clock

OPEN_VISIT = ("waiting", "offered", "assigned", "arrived")


def visit_still_required(session: Session, lead_id: int) -> bool:
    """Is a face-to-face visit asked for and not done? Open, or `failed` (no squad took it: back
    with the center, who must assign one) — either way a phone call does not settle the lead."""
    return session.execute(select(Visit.id).where(Visit.lead_id == lead_id,
                                                  Visit.status.in_((*OPEN_VISIT, "failed"))).limit(1)).first() is not None


def open_visit(session: Session, lead_id: int) -> Visit | None:
    return session.execute(select(Visit).where(Visit.lead_id == lead_id, Visit.status.in_(OPEN_VISIT))).scalar()


def request_visit(session: Session, lead, reason: str, *, actor: str = "worker",
                  due_at: datetime | None = None) -> Visit:
    """Make a face-to-face visit required for `lead` (idempotent: an open visit is returned as is).
    The caller commits."""
    visit = open_visit(session, lead.id)
    if visit is not None:
        return visit
    visit = Visit(lead_id=lead.id, reason=reason, requested_by=actor, requested_at=clock.now(), due_at=due_at)
    session.add(visit)
    session.flush()
    session.add(LeadEvent(lead_id=lead.id, actor=actor, kind="visit_requested",
                          data={"visit_id": visit.id, "reason": reason,
                                "due_at": due_at.isoformat() if due_at else None}))
    events.visit_needs_squad(session, visit.id)  # field dispatch, after the caller's commit
    return visit
