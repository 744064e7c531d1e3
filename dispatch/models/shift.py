"""The shift: alarms raised by missed deadlines."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    SmallInteger,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from dispatch.models.columns import _id, _lead_fk, _ts


class Alarm(SQLModel, table=True):
    """告警: a missed deadline (sign, a call, a squad not on scene, a missed check-in) that a person
    must acknowledge. Unacknowledged past `escalate_at`, it climbs to the policy's next level."""
    __table_args__ = (Index("ix_alarm_active", "escalate_at",
                            postgresql_where=text("acked_at IS NULL AND resolved_at IS NULL")),)
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    kind: str  # the step whose deadline was missed: sign, first_call, on_scene, checkin, ...
    tier: str | None = None
    deadline_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    assignment_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    team_code: str | None = None
    due_at: datetime | None = Field(default=None, sa_column=_ts())  # the deadline that was missed
    raised_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    level: int = Field(default=1, sa_column=Column(SmallInteger, nullable=False, server_default="1"))
    escalate_at: datetime | None = Field(default=None, sa_column=_ts())  # None: the top level
    acked_at: datetime | None = Field(default=None, sa_column=_ts())
    acked_by: str | None = None
    resolved_at: datetime | None = Field(default=None, sa_column=_ts())  # the step was done after all
    data: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
