"""Leads, their audit trail (events, reads, the chain's heads) and rejected pushes."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from dispatch.models.columns import _sealed_indexes, _ts


class Lead(SQLModel, table=True):
    """预警线索. Subject and location as pushed; placement and tier as the worker decided."""
    __table_args__ = (
        UniqueConstraint("source", "source_id", name="uq_lead_source"),
        # The reconciler's scan: only the few leads still waiting for a worker.
        Index("ix_lead_received", "received_at", postgresql_where=text("status = 'received'")),
        Index("ix_lead_status_tier", "status", "tier"),
        Index("ix_lead_needs_call", "id", postgresql_where=text("needs_call")),
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
    loc_address: str | None = None  # a `kind: address` location: geocoded by the worker
    # ... and as placed (WGS-84).
    lon: float | None = None
    lat: float | None = None
    beat_code: str | None = Field(default=None, index=True)
    street_code: str | None = Field(default=None, index=True)
    in_jurisdiction: bool | None = None
    placed_by: str | None = None  # location | geocoder | residence | none
    placement_reason: str | None = None  # why not by location: e.g. the geocoder was down
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
    close_note: str | None = None
    loss_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))  # 被骗金额
    saved_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))  # 挽损金额
    # Worker processing (place and tier): attempts so far and the last error; `failed` stops retries.
    attempts: int = Field(default=0, sa_column=Column(SmallInteger, nullable=False, server_default="0"))
    last_error: str | None = None
    # The ladder wants an operator to call (in the call queue); cleared by a connected call, an
    # invalid number, the failed-call limit, close or transfer.
    needs_call: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="false"))
    # The operator calling it now (the desk's claim): no second operator gets it until `claimed_until`.
    claimed_by: str | None = None
    claimed_until: datetime | None = Field(default=None, sa_column=_ts())
    # The person this warning is about (linked by phone and ID number), and the lead whose piece of
    # work it joined when that person already had open work (null: it is its own work).
    person_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("person.id"), nullable=True,
                                                                  index=True))
    merged_into: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("lead.id"), nullable=True,
                                                                    index=True))
    # The district of the city that owns the lead now (null: the city center's).
    district_code: str | None = Field(default=None, index=True)
    # Loaded from history (`import-leads --historic`): placed and tiered for the records, never worked.
    historic: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default="false"))
    updated_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))


class LeadEvent(SQLModel, table=True):
    """The audit trail: one row per change of a lead, shown as its `timeline`."""
    __tablename__ = "lead_event"
    __table_args__ = (Index("ix_lead_event_lead", "lead_id", "id"), *_sealed_indexes("lead_event"))
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    lead_id: int = Field(sa_column=Column(BigInteger, ForeignKey("lead.id", ondelete="CASCADE"), nullable=False))
    at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    actor: str
    kind: str
    data: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
    # Set by the sealer (dispatch/audit.py), never by writers: position in the chain and its HMAC.
    seal_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    seal: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


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
    __table_args__ = _sealed_indexes("access_log")
    id: int | None = Field(default=None, sa_column=Column(BigInteger, Identity(), primary_key=True))
    at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    actor: str
    role: str
    lead_id: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    what: str
    seal_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    seal: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class AuditHead(SQLModel, table=True):
    """The end of each audit chain (dispatch/audit.py): a chain cut short at its tail shows here."""
    __tablename__ = "audit_head"
    tbl: str = Field(primary_key=True)
    position: int = Field(sa_column=Column(BigInteger, nullable=False))
    seal: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    sealed_at: datetime | None = Field(default=None, sa_column=_ts())
