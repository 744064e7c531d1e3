"""Cases reported to the police, matched back to warnings (预警后发案)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Numeric,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from dispatch.models.columns import _id, _ts


class CaseReport(SQLModel, table=True):
    """发案: a fraud report actually filed. `post_warning_lead_id` is the lead whose warning the
    victim had in the 30 days before (预警后发案), recomputed when a matching lead arrives later."""
    __tablename__ = "case_report"
    id: int | None = Field(default=None, sa_column=_id())
    case_id: str = Field(unique=True)
    reported_at: datetime = Field(sa_column=_ts(nullable=False))
    received_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    victim_phone: str | None = Field(default=None, index=True)
    victim_id_number: str | None = Field(default=None, index=True)
    fraud_type: str
    loss_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    beat_code: str | None = Field(default=None, index=True)
    post_warning_lead_id: int | None = Field(default=None, sa_column=Column(
        BigInteger, ForeignKey("lead.id", ondelete="SET NULL"), index=True))
    raw: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
