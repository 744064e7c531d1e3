"""The city: handovers of a lead between its districts (移交, 接收)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from dispatch.models.columns import _id, _lead_fk, _ts


class LeadTransfer(SQLModel, table=True):
    """A lead handed from one owner (a district, or the city center: null) to a district of the city.
    The sender stays accountable until the receiver accepts; unanswered by `due_at`, the lead goes
    back to the city center with an alarm (`dispatch.city.expire_transfers`).

    state: review (a commander of the sending district must approve it first) | pending (waiting for
    the receiver) | accepted | refused | expired | cancelled (rejected in review, or the lead ended)."""
    __tablename__ = "lead_transfer"
    __table_args__ = (
        # One open handover per lead.
        Index("uq_lead_transfer_open", "lead_id", unique=True,
              postgresql_where=text("state IN ('review', 'pending')")),
        Index("ix_lead_transfer_to", "to_district", "state"),
        Index("ix_lead_transfer_from", "from_district", "state"),
        Index("ix_lead_transfer_due", "due_at", postgresql_where=text("state = 'pending'")),
    )
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    from_district: str | None = None  # null: the city center
    to_district: str
    reason: str
    state: str
    requested_by: str
    requested_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    reviewed_by: str | None = None
    reviewed_at: datetime | None = Field(default=None, sa_column=_ts())
    due_at: datetime | None = Field(default=None, sa_column=_ts())  # set when it starts waiting for the receiver
    answered_by: str | None = None
    answered_at: datetime | None = Field(default=None, sa_column=_ts())
    answer_reason: str | None = None
