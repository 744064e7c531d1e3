"""Wire models of the response ladder's routes (contract.md: center actions, Calls, SMS, callbacks,
receipts). Public schemas, apart from the tables."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from dispatch.enums import CallbackResult, CallResult, Outcome, Tier
from service.core.params import Number, Text

# Numeric(14, 2): |x| < 10^12, cents at most.
# A JSON number, never a string (service.core.params.Number): its schema says so.
Money = Annotated[Decimal, Number, Field(ge=0, lt=10**12, max_digits=14, decimal_places=2, examples=[11208.77]),
                  WithJsonSchema({"type": "number", "minimum": 0, "exclusiveMaximum": 10**12, "examples": [11208.77]},
                                 mode="validation")]


class DeadlinePublic(BaseModel):
    name: str = Field(examples=["first_call"])
    due_at: datetime
    state: Literal["pending", "met", "missed", "cancelled"]
    met_at: datetime | None = None


class Handover(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: int
    from_: str | None = Field(alias="from", description="The sending district (null: the city center)")
    to: str
    state: str = Field(description="review | pending | accepted | refused | expired | cancelled")
    due_at: datetime | None


class LeadStatePublic(BaseModel):
    """A lead after a center action: status, tier and every deadline row."""
    id: int
    status: str
    tier: str | None
    signed_at: datetime | None
    signed_by: str | None
    outcome: str | None
    closed_at: datetime | None
    transfer_to: str | None
    district_code: str | None = Field(None, description="The district that owns the lead (null: the city center)")
    handover: Handover | None = Field(None, description="Its latest handover between districts, if any")
    needs_call: bool
    flags: list[str]
    loss_cny: float | None
    saved_cny: float | None
    deadlines: list[DeadlinePublic]


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"tier": "P1", "reason": "老人独居"}]})
    tier: Tier
    reason: Text(500, 1)


class TransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"to": "市南区反诈中心", "reason": "人在市南区"}]})
    to: Text(200, 1)
    reason: Text(500, 1)


class RefuseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "人不在本区，在市北区"}]})
    reason: Text(500, 1)


class CloseIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outcome": "dissuaded", "note": "已电话劝阻", "loss_cny": None, "saved_cny": 5000}]})
    outcome: Outcome
    note: Text(2000) | None = None
    loss_cny: Money | None = None
    saved_cny: Money | None = None


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"result": "connected", "outcome": "dissuaded", "note": "已停止转账"}, {"result": "no_answer"}]})
    result: CallResult
    outcome: Outcome | None = Field(None, description="Only with result `connected`")
    note: Text(2000) | None = None


class CallPublic(BaseModel):
    id: int
    lead_id: int
    result: CallResult
    outcome: Outcome | None
    rules: list[str] = Field(description="The ladder rules this call fired (failed_calls, dissuaded_by_phone, …)")
    lead: LeadStatePublic


class SubjectToCall(BaseModel):
    phone: str | None = Field(description="In full: the operator dials it (center roles only; the read is audited)")
    phone_masked: str | None
    name: str | None
    residency: str


class NextDeadline(BaseModel):
    name: str
    due_at: datetime


class CallQueueItem(BaseModel):
    id: int
    tier: str | None
    status: str
    warning_type: str
    fraud_type: str
    risk_level: int
    received_at: datetime
    subject: SubjectToCall
    beat_code: str | None
    street_code: str | None
    flags: list[str]
    next_deadline: NextDeadline | None
    calls: int
    failed_calls: int
    last_call_at: datetime | None
    amount_cny: float | None = None
    next_call_at: datetime | None = Field(None, description="The retry timer: the last failed call + desk.call_retry_after")
    claimed_by: str | None = Field(None, description="The operator calling it now (the desk's claim), if any")
    claimed_until: datetime | None = None


class CallQueuePublic(BaseModel):
    items: list[CallQueueItem]


class ClaimPublic(BaseModel):
    """The desk's next lead: `item` null when nobody is waiting for a call (or all are held or not due)."""
    item: CallQueueItem | None
    claimed_until: datetime | None


class ReleasePublic(BaseModel):
    lead_id: int
    claimed_by: None
    claimed_until: None


class CallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"result": "safe"}, {"result": "defrauded", "loss_cny": 3000, "note": "回访时称已被骗"}]})
    result: CallbackResult
    loss_cny: Money | None = Field(None, description="Only with result `defrauded`")
    note: Text(2000) | None = None


class CallbackPublic(BaseModel):
    id: int
    lead_id: int
    result: CallbackResult
    loss_cny: float | None
    done_at: datetime = Field(description="When this attempt was made")
    attempt: int = Field(description="1 for the first attempt of this 回访, 2 for its first retry, …")
    done: bool = Field(description="The 回访 is done (counted in callbacks_done): the person answered safe or "
                                   "defrauded. `not_reached` is not done")
    next_attempt_due_at: datetime | None = Field(description="Not reached: when the next attempt is due "
                                                 "([callback] retry_after); null when done or after the last "
                                                 "attempt ([callback] max_attempts), which leaves it not done")
    lead: LeadStatePublic


class CallbackDue(BaseModel):
    callback_id: int
    lead_id: int
    due_at: datetime
    attempt: int = Field(description="Which attempt of the 回访 this is (a retry after `not_reached` is 2, 3, …)")
    tier: str | None
    status: str
    outcome: str | None
    closed_at: datetime | None
    fraud_type: str
    subject: SubjectToCall


class CallbacksDuePublic(BaseModel):
    items: list[CallbackDue]


class ReceiptIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"message_id": "gw-20261001-000123", "status": "delivered"}]})
    message_id: Text(200, 1)
    status: Literal["delivered", "failed"]


class ReceiptPublic(BaseModel):
    message_id: str
    status: str
    changed: bool = Field(description="False when the message already had a final status (a repeated receipt)")
    escalated: bool = Field(description="A failed warning SMS escalated the lead to a call (ladder.sms_failed_to_call)")
