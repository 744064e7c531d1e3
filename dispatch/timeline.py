"""The one timeline writer (as Dispatch's `log_case_event`): every change of a lead, its visits,
offers, calls and messages is a `lead_event` row written here, stamped by `service.core.clock`, and
counted by kind once its unit of work commits (dispatch.metrics)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlmodel import Session

from dispatch import metrics, outbox
from dispatch.models import LeadEvent
from service.core import clock


def record(session: Session, lead_id: int, actor: str, kind: str, data: dict | None = None,
           at: datetime | None = None) -> None:
    """One event on the lead's timeline, in the caller's unit of work."""
    session.add(LeadEvent(lead_id=lead_id, actor=actor, kind=kind, data=data or {}, at=at or clock.now()))
    outbox.count(session, metrics.of_event(kind, data))


def record_many(session: Session, rows: list[dict]) -> None:
    """Many events in one INSERT: each row `{lead_id, actor, kind, data}` (`at` defaults to now)."""
    if rows:
        now = clock.now()
        session.execute(insert(LeadEvent), [{"at": now, **r} for r in rows])
        outbox.count(session, [c for r in rows for c in metrics.of_event(r["kind"], r.get("data"))])
