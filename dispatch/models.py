"""Tables of leads, their audit trail, rejections and squads."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True, default_now: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None)


class Lead(SQLModel, table=True):
    """预警线索. Subject and location as pushed; placement and tier as the worker decided."""
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="uq_lead_source"),
        # The reconciler's scan: only the few leads still waiting for a worker.
        Index("ix_lead_received", "received_at", postgresql_where=text("status = 'received'")),
        Index("ix_lead_status_tier", "status", "tier"),
    )
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    source: str
    source_id: str
    pushed_at: datetime = Field(sa_column=_ts(nullable=False))
    received_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    warning_type: str
    fraud_type: str
    fraud_type_raw: str | None = None
    risk_level: int = Field(sa_column=Column(SmallInteger, nullable=False))
    ongoing: bool = False
    phone: str | None = Field(default=None, index=True)
    name: str | None = None
    id_number: str | None = Field(default=None, index=True)
    residency: str = "unknown"
    counterpart: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
    amount_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    # As pushed (any CRS) ...
    loc_lon: float | None = None
    loc_lat: float | None = None
    loc_crs: str | None = None
    loc_accuracy_m: float | None = None
    loc_kind: str | None = None
    # ... and as placed (WGS-84).
    lon: float | None = None
    lat: float | None = None
    beat_code: str | None = Field(default=None, index=True)
    street_code: str | None = Field(default=None, index=True)
    in_jurisdiction: bool | None = None
    placed_by: str | None = None  # location | residence | none
    flags: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False, server_default="[]"))
    status: str = Field(default="received", sa_column=Column(String, nullable=False, server_default="received"))
    tier: str | None = None
    tier_detail: dict | None = Field(default=None, sa_column=Column(JSONB))
    assigned_team: str | None = Field(default=None, index=True)
    transfer_to: str | None = None
    transfer_reason: str | None = None
    signed_at: datetime | None = Field(default=None, sa_column=_ts())
    signed_by: str | None = None
    outcome: str | None = None
    closed_at: datetime | None = Field(default=None, sa_column=_ts())
    updated_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))


class LeadEvent(SQLModel, table=True):
    """The audit trail: one row per change of a lead, shown as its `timeline`."""
    __tablename__ = "lead_event"
    __table_args__ = (Index("ix_lead_event_lead", "lead_id", "id"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    lead_id: int = Field(sa_column=Column(BigInteger, ForeignKey("lead.id", ondelete="CASCADE"), nullable=False))
    at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    actor: str
    kind: str
    data: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))


class Rejection(SQLModel, table=True):
    """A push refused for hard defects: kept so rejections can be counted per source and field."""
    __table_args__ = (Index("ix_rejection_at", "at"),)
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    actor: str
    source: str | None = None
    source_id: str | None = None
    errors: list = Field(default_factory=list, sa_column=Column(JSONB, nullable=False))


class AccessLog(SQLModel, table=True):
    """Every read of a full (unmasked) record, as PIPL Art. 51 asks."""
    __tablename__ = "access_log"
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    actor: str
    role: str
    lead_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    what: str


class Team(SQLModel, table=True):
    """劝阻小组: 民警 + 辅警 + 网格员, one per beat."""
    code: str = Field(primary_key=True)
    name: str
    beat_code: str | None = Field(default=None, foreign_key="beat.code", index=True)
    home_lon: float | None = None
    home_lat: float | None = None
    status: str = "off_duty"
    last_lon: float | None = None
    last_lat: float | None = None
    last_at: datetime | None = Field(default=None, sa_column=_ts())


class TeamMember(SQLModel, table=True):
    __tablename__ = "team_member"
    id: int | None = Field(default=None, primary_key=True)
    team_code: str = Field(foreign_key="team.code", index=True)
    role: str
    name: str
    phone: str | None = None
    badge_no: str | None = None
