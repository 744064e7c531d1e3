"""Tables of leads, their audit trail, rejections and squads."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    LargeBinary,
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
    updated_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))


def _sealed_indexes(table: str) -> tuple[Index, Index]:
    """The chain's order (unique positions) and the sealer's queue (rows not sealed yet); both
    partial, so an insert touches only the small second one."""
    return (Index(f"uq_{table}_seal_seq", "seal_seq", unique=True, postgresql_where=text("seal_seq IS NOT NULL")),
            Index(f"ix_{table}_unsealed", "id", postgresql_where=text("seal_seq IS NULL")))


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
    # The member's login (app_user.username), when one was made for them (`quanzu field-sim --create-users`).
    username: str | None = Field(default=None, index=True)


# ---------------------------------------------------------------- the response ladder (issue 12)
def _id() -> Column:
    return Column(BigInteger, Identity(), primary_key=True)


def _lead_fk(nullable: bool = False) -> Column:
    return Column(BigInteger, ForeignKey("lead.id", ondelete="CASCADE"), nullable=nullable, index=True)


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
    """回访: a call some days after close to confirm the person is safe and count losses avoided."""
    __table_args__ = (Index("ix_callback_due", "due_at", postgresql_where=text("done_at IS NULL")),)
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    due_at: datetime = Field(sa_column=_ts(nullable=False))
    done_at: datetime | None = Field(default=None, sa_column=_ts())
    actor: str | None = None
    result: str | None = None  # safe | defrauded | not_reached
    loss_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    note: str | None = None


class Visit(SQLModel, table=True):
    """见面劝阻 required for a lead (`request_visit`): the input of field dispatch. One open visit
    per lead; its assignments are the offers made to squads for it."""
    __table_args__ = (Index("uq_visit_open", "lead_id", unique=True,
                            postgresql_where=text("status IN ('waiting', 'offered', 'assigned', 'arrived')")),)
    id: int | None = Field(default=None, sa_column=_id())
    lead_id: int = Field(sa_column=_lead_fk())
    reason: str  # the rule that fired (policy, failed_calls, no_connection, invalid_number, center, ...)
    requested_by: str
    requested_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    due_at: datetime | None = Field(default=None, sa_column=_ts())
    # waiting (no squad yet) | offered | assigned | arrived | done | failed (back to the center) | cancelled
    status: str = Field(default="waiting", sa_column=Column(String, nullable=False, server_default="waiting"))
    team_code: str | None = Field(default=None, index=True)
    done_at: datetime | None = Field(default=None, sa_column=_ts())
    met_in_person: bool | None = None
    outcome: str | None = None


# ---------------------------------------------------------------- field dispatch (issue 13)
class Assignment(SQLModel, table=True):
    """One offer of a visit to one squad, and what the squad did with it."""
    __table_args__ = (Index("ix_assignment_expiry", "expires_at", postgresql_where=text("status = 'offered'")),)
    id: int | None = Field(default=None, sa_column=_id())
    visit_id: int = Field(sa_column=Column(BigInteger, ForeignKey("visit.id", ondelete="CASCADE"), nullable=False,
                                           index=True))
    lead_id: int = Field(sa_column=_lead_fk())
    team_code: str = Field(foreign_key="team.code", index=True)
    attempt: int = 1  # 1 = first squad asked, 2 = second, ...
    # offered | accepted | declined | expired | withdrawn | arrived | completed
    status: str = Field(default="offered", sa_column=Column(String, nullable=False, server_default="offered"))
    choice: dict = Field(default_factory=dict, sa_column=Column(JSONB, nullable=False, server_default="{}"))
    offered_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
    accepted_by: str | None = None
    accepted_at: datetime | None = Field(default=None, sa_column=_ts())
    declined_reason: str | None = None
    arrived_at: datetime | None = Field(default=None, sa_column=_ts())  # the phone's time (made offline, sent later)
    completed_at: datetime | None = Field(default=None, sa_column=_ts())
    arrived_received_at: datetime | None = Field(default=None, sa_column=_ts())  # when the server got it
    completed_received_at: datetime | None = Field(default=None, sa_column=_ts())
    checkin_at: datetime | None = Field(default=None, sa_column=_ts())  # the squad's last check-in on scene
    checkin_due_at: datetime | None = Field(default=None, sa_column=_ts())  # the next one (policy field.checkin_every)
    outcome: str | None = None
    met_in_person: bool | None = None
    note: str | None = None
    loss_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    saved_cny: Decimal | None = Field(default=None, sa_column=Column(Numeric(14, 2)))
    checklist: dict | None = Field(default=None, sa_column=Column(JSONB))


class OfferDelivery(SQLModel, table=True):
    """Did an offer reach each member's phone? pushed (socket), acked (client), sms (fallback)."""
    __tablename__ = "offer_delivery"
    __table_args__ = (UniqueConstraint("assignment_id", "username", name="uq_offer_delivery"),)
    id: int | None = Field(default=None, sa_column=_id())
    assignment_id: int = Field(sa_column=Column(BigInteger, ForeignKey("assignment.id", ondelete="CASCADE"),
                                                nullable=False, index=True))
    username: str
    pushed_at: datetime | None = Field(default=None, sa_column=_ts())
    acked_at: datetime | None = Field(default=None, sa_column=_ts())
    sms_at: datetime | None = Field(default=None, sa_column=_ts())


# ---------------------------------------------------------------- outcomes (issue 14)
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


# ---------------------------------------------------------------- the shift (issue 20)
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


# ---------------------------------------------------------------- the family, stop-payment (issue 21)
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


# ---------------------------------------------------------------- dialling through the phone network
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


# ---------------------------------------------------------------- SMS replies (issue 21)
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
