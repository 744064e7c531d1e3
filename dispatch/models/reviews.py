"""Reviews of post-warning cases (倒查) and feedback to the sources (反馈)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Column, ForeignKey, Index, SmallInteger, String, Text, text
from sqlmodel import Field, SQLModel

from dispatch.models.columns import _id, _ts


class CaseReview(SQLModel, table=True):
    """倒查: a case filed after a warning is reviewed. The row records that (and when) the case was
    matched to a warning; the review itself (every action, deadline and person told) is computed
    from the leads' own rows when read (dispatch/outcomes/reviews.py), so it never goes stale."""
    __tablename__ = "case_review"
    id: int | None = Field(default=None, sa_column=_id())
    case_report_id: int = Field(sa_column=Column(BigInteger, ForeignKey("case_report.id", ondelete="CASCADE"),
                                                 nullable=False, unique=True))
    lead_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("lead.id", ondelete="SET NULL"),
                                                                nullable=True, index=True))
    generated_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))  # first matched
    matched_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))  # matched to `lead_id`


class FeedbackSource(SQLModel, table=True):
    """A source that asked for feedback: where to POST, and the key its deliveries are signed with
    (HMAC-SHA256; kept in clear because signing needs it, as a webhook secret is)."""
    __tablename__ = "feedback_source"
    source: str = Field(primary_key=True)
    url: str
    key: str
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    updated_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))


class FeedbackDelivery(SQLModel, table=True):
    """反馈: one change a source cares about, written in the transaction of the change (a database
    outbox), delivered after commit in id order per source, once (its id is the receiver's
    idempotency key). pending → delivered, or dead after the last failed attempt."""
    __tablename__ = "feedback_delivery"
    __table_args__ = (
        # The deliverer's scan: a source's pending rows in order.
        Index("ix_feedback_pending", "source", "id", postgresql_where=text("status = 'pending'")),
        Index("ix_feedback_dead", "id", postgresql_where=text("status = 'dead'")),
    )
    id: int | None = Field(default=None, sa_column=_id())
    source: str = Field(sa_column=Column(String, nullable=False))
    lead_id: int = Field(sa_column=Column(BigInteger, ForeignKey("lead.id", ondelete="CASCADE"), nullable=False,
                                          index=True))
    event: str  # signed | reached | visited | closed | case_filed
    payload: str = Field(sa_column=Column(Text, nullable=False))  # JSON, without the delivery's own id
    status: str = Field(default="pending", sa_column=Column(String, nullable=False, server_default="pending"))
    attempts: int = Field(default=0, sa_column=Column(SmallInteger, nullable=False, server_default="0"))
    next_attempt_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    last_error: str | None = None
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    delivered_at: datetime | None = Field(default=None, sa_column=_ts())
