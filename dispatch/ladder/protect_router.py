"""The person's protection over HTTP: the family circle (保护圈) and stop-payment (止付) requests."""
from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from dispatch import flows
from dispatch.access import audited, readable_leads
from dispatch.ladder import family, stop_payment
from dispatch.ladder.schemas import Money
from dispatch.models import Lead
from dispatch.policy import PolicyDep
from service.core.auth import ALL_ROLES, CENTER_ROLES, Principal, RequireRole
from service.core.db import SessionDep
from service.core.errors import NotFound
from service.core.openapi import error_responses
from service.core.params import Id, Text

router = APIRouter(prefix="/api/v1", tags=["ladder"])

Center = Annotated[Principal, Depends(RequireRole(*CENTER_ROLES))]
Anyone = Annotated[Principal, Depends(RequireRole(*ALL_ROLES))]


class FamilyIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "王芳", "relation": "女儿", "phone": "13912345678"}]})
    name: Text(50, 1)
    relation: Text(20, 1) = Field(description="女儿, 儿子, 配偶, 朋友, 社区 …")
    phone: Text(20, 5)


class FamilyPublic(BaseModel):
    id: int
    name: str
    relation: str
    phone: str = Field(description="In full to the center and the assigned squad (the read audited)")
    added_by: str
    lead_id: int


class FamilyList(BaseModel):
    items: list[FamilyPublic]
    max_contacts: int


class StopPaymentIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"bank": "中国工商银行", "account": "6222020200112233445", "amount_cny": 50000}]})
    bank: Text(100, 1)
    account: Annotated[str, Field(min_length=4, max_length=40, pattern=r"^[0-9A-Za-z-]+$")]
    amount_cny: Money | None = None


class StopPaymentAnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"status": "frozen", "saved_cny": 48000, "note": "已冻结"}]})
    status: Literal["frozen", "refused"]
    saved_cny: Money | None = None
    note: Text(500) | None = None


class StopPaymentPublic(BaseModel):
    id: int
    lead_id: int
    seq: int = Field(description="1st or 2nd request of the lead (at most stop_payment.max_requests)")
    bank: str
    account: str
    amount_cny: float | None
    requested_by: str
    requested_at: str
    expires_at: str = Field(description="The request's validity (stop_payment.valid_for, 48 h)")
    answer_due_at: str = Field(description="The bank's answer due; unanswered → an alarm")
    status: Literal["requested", "frozen", "refused", "lapsed"]
    answered_at: str | None
    answered_by: str | None
    saved_cny: float | None
    note: str | None


class StopPaymentList(BaseModel):
    items: list[StopPaymentPublic]


def _readable(s, lead_id: int, who: Principal) -> Lead:
    lead = s.execute(select(Lead).where(Lead.id == lead_id, readable_leads(who))).scalar()
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    return lead


@router.get("/leads/{lead_id}/family", response_model=FamilyList, responses=error_responses(401, 403, 404, 422),
            summary="保护圈: the person's family contacts (the center and the assigned squad; the read audited)")
async def get_family(lead_id: Id, session: SessionDep, who: Anyone, policy: PolicyDep):
    def run(s):
        lead = _readable(s, lead_id, who)
        audited(s, who, lead_id, "family")
        return {"items": [family.public(c, True) for c in family.contacts_of(s, lead, policy.family.max_contacts)],
                "max_contacts": policy.family.max_contacts}
    return await session.run_sync(run)


@router.post("/leads/{lead_id}/family", response_model=FamilyPublic, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Add a family contact (the center, or the squad on the lead); 409 when the circle is full")
async def post_family(lead_id: Id, body: FamilyIn, session: SessionDep, who: Anyone, policy: PolicyDep):
    def run(s):
        _readable(s, lead_id, who)
        c = family.add_contact(s, lead_id, body.name, body.relation, body.phone, who, policy)
        return family.public(c, True)
    return await session.run_sync(run)


@router.get("/leads/{lead_id}/stop-payments", response_model=StopPaymentList,
            responses=error_responses(401, 403, 404, 422), summary="止付 requests of a lead (admin, commander, operator)")
async def get_stop_payments(lead_id: Id, session: SessionDep, who: Center):
    def run(s):
        _readable(s, lead_id, who)
        return {"items": [stop_payment.public(r) for r in stop_payment.requests_of(s, lead_id)]}
    return await session.run_sync(run)


@router.post("/leads/{lead_id}/stop-payments", response_model=StopPaymentPublic, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Ask the bank to stop a payment: valid 48 h, at most twice per lead (409 after); the bank's "
                     "answer due within stop_payment.answer_within, else an alarm (admin, commander, operator)")
async def post_stop_payment(lead_id: Id, body: StopPaymentIn, session: SessionDep, who: Center, policy: PolicyDep):
    amount = None if body.amount_cny is None else Decimal(body.amount_cny)
    return await session.run_sync(lambda s: stop_payment.public(
        stop_payment.request(s, lead_id, body.bank, body.account, amount, who, policy)))


@router.post("/stop-payments/{request_id}/answer", response_model=StopPaymentPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="The bank's answer: frozen (with the amount held: saved on the lead) or refused "
                     "(admin, commander, operator)")
async def answer_stop_payment(request_id: Id, body: StopPaymentAnswerIn, session: SessionDep, who: Center,
                              policy: PolicyDep):
    saved = None if body.saved_cny is None else Decimal(body.saved_cny)
    return await session.run_sync(lambda s: stop_payment.public(
        flows.answer_stop_payment(s, request_id, body.status, saved, body.note, who, policy)))
