"""Closed vocabularies of the lead workflow. Every value equals its member name, so the
wire, the database and the code spell them the same way."""
from __future__ import annotations

from enum import StrEnum


class Source(StrEnum):
    """推送来源."""
    national_platform = "national_platform"
    provincial_center = "provincial_center"
    bank_fund_monitor = "bank_fund_monitor"
    hotline_96110 = "hotline_96110"
    alarm_110 = "alarm_110"


class WarningType(StrEnum):
    fraud_call = "fraud_call"
    fraud_sms = "fraud_sms"
    fraud_app = "fraud_app"
    fraud_url = "fraud_url"
    fund_transfer = "fund_transfer"  # 资金预警: a transfer is in progress
    citizen_report = "citizen_report"


class FraudType(StrEnum):
    order_brushing = "order_brushing"  # 刷单返利
    impersonate_customer_service = "impersonate_customer_service"
    fake_loan = "fake_loan"
    impersonate_acquaintance = "impersonate_acquaintance"
    online_shopping = "online_shopping"
    fake_investment = "fake_investment"
    impersonate_authority = "impersonate_authority"  # 冒充公检法
    game_trading = "game_trading"
    online_dating = "online_dating"
    fake_credit_repair = "fake_credit_repair"
    ticket_refund = "ticket_refund"
    other = "other"


# `nonlocal` is a Python keyword, so this one is built functionally; spell that member
# Residency["nonlocal"] or Residency("nonlocal"). transient = 途经 (passing through).
Residency = StrEnum("Residency", [(v, v) for v in ("resident", "worker", "transient", "nonlocal", "unknown")],
                    module=__name__)


class LocationKind(StrEnum):
    gps = "gps"
    cell = "cell"
    address = "address"


class LeadStatus(StrEnum):
    received = "received"
    tiered = "tiered"
    working = "working"
    closed = "closed"
    transferred = "transferred"  # 移交: out of jurisdiction


class Tier(StrEnum):
    """Most urgent first; `TIER_ORDER` ranks them."""
    P0 = "P0"
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"


TIER_ORDER: dict[Tier, int] = {t: i for i, t in enumerate(Tier)}


class Response(StrEnum):
    """Ways of dissuading, weakest first."""
    sms = "sms"  # 短信劝阻
    call = "call"  # 电话劝阻
    visit = "visit"  # 见面劝阻


class Outcome(StrEnum):
    dissuaded = "dissuaded"
    already_defrauded = "already_defrauded"
    refused = "refused"
    not_reached = "not_reached"
    false_alarm = "false_alarm"
    duplicate = "duplicate"


class Flag(StrEnum):
    """Soft defects and markers on an accepted lead."""
    id_number_invalid = "id_number_invalid"
    fraud_type_unknown = "fraud_type_unknown"
    residency_unknown = "residency_unknown"
    location_kind_unknown = "location_kind_unknown"
    no_location = "no_location"
    stop_payment = "stop_payment"  # 止付: the person says money has already gone
    processing_failed = "processing_failed"  # the worker gave up after max_processing_attempts


class CallResult(StrEnum):
    """电话劝阻 results (contract: Calls)."""
    connected = "connected"
    no_answer = "no_answer"
    busy = "busy"
    powered_off = "powered_off"
    rejected = "rejected"
    invalid_number = "invalid_number"


class CallbackResult(StrEnum):
    """回访 results."""
    safe = "safe"
    defrauded = "defrauded"
    not_reached = "not_reached"


class SmsPurpose(StrEnum):
    warning = "warning"  # 短信劝阻 to the subject
    offer = "offer"  # a squad offer that reached no phone (field dispatch's fallback)
    family = "family"  # 保护圈: a relative told the person may be being defrauded


class SmsStatus(StrEnum):
    pending = "pending"
    sent = "sent"
    delivered = "delivered"
    failed = "failed"


class DeadlineState(StrEnum):
    pending = "pending"
    met = "met"
    missed = "missed"
    cancelled = "cancelled"


class VisitStatus(StrEnum):
    """见面劝阻 required for a lead: waiting for a squad, offered, taken, on scene, and how it ended."""
    waiting = "waiting"  # no squad yet
    offered = "offered"
    assigned = "assigned"  # a squad accepted
    arrived = "arrived"  # 到场
    done = "done"
    failed = "failed"  # no squad took it: back with the center
    cancelled = "cancelled"  # the lead ended (closed, transferred) before a squad was needed


class AssignmentStatus(StrEnum):
    """One offer of a visit to one squad, and what the squad did with it."""
    offered = "offered"
    accepted = "accepted"  # 接单
    declined = "declined"  # 拒单
    expired = "expired"  # not accepted before expires_at
    withdrawn = "withdrawn"  # the center chose another squad, or the lead ended
    arrived = "arrived"
    completed = "completed"


class CallState(StrEnum):
    """A call is recorded once, with its result: no call changes after it is made."""
    recorded = "recorded"


class CallbackState(StrEnum):
    """回访: due until done (with its result)."""
    due = "due"
    done = "done"


class TeamStatus(StrEnum):
    on_duty = "on_duty"
    off_duty = "off_duty"
    busy = "busy"


class CallChannel(StrEnum):
    """How a call's result reached quanzu."""
    operator = "operator"  # typed in at the desk
    sip = "sip"  # the phone network's answer to a dial (baresip)
    robot = "robot"  # a robot caller's report (AI 外呼)


class DialState(StrEnum):
    """A dial through the desk's SIP line: queued → dialling → done (a call recorded), or failed
    (the line did not carry it: no call was made), or unknown (the worker vanished mid-call)."""
    queued = "queued"
    dialling = "dialling"
    done = "done"
    failed = "failed"
    unknown = "unknown"
