"""The one timeline writer (as Dispatch's `log_case_event`): every change of a lead, its visits,
offers, calls and messages is a `lead_event` row written here, stamped by `service.core.clock`."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session

from dispatch.models import LeadEvent
from service.core import clock


def record(session: Session, lead_id: int, actor: str, kind: str, data: dict | None = None,
           at: datetime | None = None) -> None:
    """One event on the lead's timeline, in the caller's unit of work."""
    session.add(LeadEvent(lead_id=lead_id, actor=actor, kind=kind, data=data or {}, at=at or clock.now()))


def record_many(session: Session, rows: list[dict]) -> None:
    """Many events in one INSERT: each row `{lead_id, actor, kind, data}` (`at` defaults to now)."""
    if rows:
        now = clock.now()
        session.execute(insert(LeadEvent), [{"at": now, **r} for r in rows])
