"""The response ladder: deadlines, calls, SMS (out and in), callbacks, dials, the family, stop-payment."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Numeric,
    SmallInteger,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from dispatch.models.columns import _id, _lead_fk, _ts


class LeadDeadline(SQLModel, table=True):
    """A promise with a time: sign, sms, first_call, connected_call, visit, on_scene, callback.
    Deadlines are rows, not timers: the workers' sweep acts on the pending ones that are due."""
    __tablename__ = "lead_deadline"
    __table_args__ = (
        UniqueConstraint("lead_id", "name", name="uq_lead_deadline"),
        # The sweep's scan: only pending rows, by due time.
        Index("ix_lead_deadline_due", "due_at", postgresql_where=text("state = 'pending'")),
    )
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    name: str
    due_at: datetime = Field(sa_column=_ts(nullable=False))
    state: str = Field(default="pending", sa_column=Column(String, nullable=False, server_default="pending"))
    met_at: datetime | None = Field(default=None, sa_column=_ts())  # the step was done in time (or late)
    acted_at: datetime | None = Field(default=None, sa_column=_ts())  # when the sweep acted on a miss
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))


class CallAttempt(SQLModel, table=True):
    """电话劝阻: one call by a center operator and its result (contract: Calls)."""
    __tablename__ = "call_attempt"
    __table_args__ = (Index("uq_call_external", "actor", "external_id", unique=True,
                            postgresql_where=text("external_id IS NOT NULL")),)
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    actor: str
    result: str  # connected | no_answer | busy | powered_off | rejected | invalid_number
    outcome: str | None = None  # when connected: an Outcome
    note: str | None = None
    # How the result came (dispatch/ladder/phone.py, robot.py): typed in by the operator, the phone
    # network's answer to a dial (SIP status, seconds connected), or a robot caller's report.
    channel: str = Field(default="operator", sa_column=Column(String, nullable=False, server_default="operator"))
    duration_s: int | None = None
    sip_status: int | None = Field(default=None, sa_column=Column(SmallInteger))
    tags: list | None = Field(default=None, sa_column=Column(JSONB))  # a robot caller's own labels, as sent
    external_id: str | None = None  # the robot platform's call id: a resent result is a no-op


class SmsMessage(SQLModel, table=True):
    """短信: a warning SMS to the subject, or an offer SMS to a squad member. `idempotency_key`
    makes a retried send a no-op at the gateway and here."""
    __tablename__ = "sms_message"
    __table_args__ = (UniqueConstraint("idempotency_key", name="uq_sms_idempotency"),
                      Index("ix_sms_message_unfinished", "sent_at", postgresql_where=text("status = 'sent'")))
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int | None = Field(default=None, sa_column=_lead_fk(nullable=True))
    assignment_id: int | None = Field(default=None, sa_column=Column(BigInteger, index=True))
    purpose: str  # warning | offer | family
    to_phone: str = Field(index=True)  # a reply (MO) is matched to the newest SMS to its sender
    body: str
    idempotency_key: str
    status: str = Field(default="pending", sa_column=Column(String, nullable=False, server_default="pending"))
    gateway_message_id: str | None = Field(default=None, index=True)
    attempts: int = 0
    error: str | None = None
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    sent_at: datetime | None = Field(default=None, sa_column=_ts())
    receipt_at: datetime | None = Field(default=None, sa_column=_ts())
    # SMS channels (issue 21): a flash SMS (闪信, class 0); the gateway's last word on it (Kannel's DLR
    # code, Aliyun's SendStatus/ErrCode) even when not final; the template's parameters (Aliyun).
    flash: bool = Field(default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false")))
    gateway_status: str | None = None
    params: dict | None = Field(default=None, sa_column=Column(JSONB))


class Callback(SQLModel, table=True):
    """回访: a call some days after close to confirm the person is safe and count losses avoided. One
    row per attempt: `done_at` when it was made; a `not_reached` attempt is followed by the next one
    (`attempt` + 1, due `[callback] retry_after` later) up to `[callback] max_attempts`. The 回访 is
    done only when an attempt answers `safe` or `defrauded` (dispatch/outcomes/kpi.py)."""
    __table_args__ = (Index("ix_callback_due", "due_at", postgresql_where=text("done_at IS NULL")),)
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    due_at: datetime = Field(sa_column=_ts(nullable=False))
    done_at: datetime | None = Field(default=None, sa_column=_ts())
    actor: str | None = None
    result: str | None = None  # safe | defrauded | not_reached
    attempt: int = Field(default=1, sa_column=Column(SmallInteger, nullable=False, server_default="1"))
    loss_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    note: str | None = None


class FamilyContact(SQLModel, table=True):
    """保护圈: a relative or friend of the person, who can be told when the person will not listen.
    Kept with the person's phone / ID number, so a later warning about them finds the same circle."""
    __tablename__ = "family_contact"
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    subject_phone: str | None = Field(default=None, index=True)
    subject_id_number: str | None = Field(default=None, index=True)
    name: str
    relation: str
    phone: str
    added_by: str  # who gave it: the source, an operator, a squad member
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))


class StopPaymentRequest(SQLModel, table=True):
    """止付: a request to a bank to stop a transfer, valid `valid_for`, at most twice per lead; the
    bank's answer recorded (`frozen` with the amount held, or `refused`), or lapsed."""
    __tablename__ = "stop_payment_request"
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    seq: int = Field(sa_column=Column(SmallInteger, nullable=False))  # 1st, 2nd request of the lead
    bank: str
    account: str
    amount_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    requested_by: str
    requested_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
    answer_due_at: datetime = Field(sa_column=_ts(nullable=False))
    status: str = Field(default="requested", sa_column=Column(String, nullable=False, server_default="requested"))
    answered_at: datetime | None = Field(default=None, sa_column=_ts())
    answered_by: str | None = None
    saved_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))  # held by the bank
    note: str | None = None


class Dial(SQLModel, table=True):
    """拨号: the desk asked its SIP line (baresip) to call the person; the phone network's answer
    becomes a `call_attempt` (`call_id`). One open dial per line and per lead (partial unique
    indexes): a line carries one call at a time."""
    __tablename__ = "dial"
    __table_args__ = (
        Index("uq_dial_open_line", "line", unique=True, postgresql_where=text("state IN ('queued', 'dialling')")),
        Index("uq_dial_open_lead", "lead_id", unique=True, postgresql_where=text("state IN ('queued', 'dialling')")),
    )
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    line: str
    actor: str  # the operator who dialled (username) ...
    actor_role: str  # ... and their role: the call is recorded as theirs
    state: str = Field(default="queued", sa_column=Column(String, nullable=False, server_default="queued"))
    requested_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    started_at: datetime | None = Field(default=None, sa_column=_ts())
    answered_at: datetime | None = Field(default=None, sa_column=_ts())
    ended_at: datetime | None = Field(default=None, sa_column=_ts())
    sip_status: int | None = Field(default=None, sa_column=Column(SmallInteger))
    sip_reason: str | None = None
    result: str | None = None  # the CallResult, when the network gave one
    call_id: int | None = Field(default=None, sa_column=Column(BigInteger, ForeignKey("call_attempt.id",
                                                                                      ondelete="SET NULL")))
    sends: int = Field(default=1, sa_column=Column(SmallInteger, nullable=False, server_default="1"))
    error: str | None = None


class SmsInbound(SQLModel, table=True):
    """短信回复 (MO): every message the gateway passed on, and what it became — an offer accepted or
    declined by a squad member, a warned person's reply on the lead's timeline, or nothing (unknown)."""
    __tablename__ = "sms_inbound"
    id: int | None = Field(default=None, sa_column=_id())
    received_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    from_phone: str = Field(index=True)
    to_number: str | None = None
    text: str
    kind: str  # offer_accept | offer_decline | offer_refused | reply | unknown
    sms_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))  # the SMS it answers
    lead_id: int | None = Field(default=None, sa_column=_lead_fk(nullable=True))
    assignment_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    error: str | None = None
