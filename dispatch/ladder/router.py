"""The response ladder over HTTP: center actions on a lead (签收, tier, transfer, close), calls,
callbacks and SMS receipts. Routes load, call one flow or service, and answer; the session
dependency commits. The services are sync (shared with the workers) and run on the request's
connection via `run_sync`."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dispatch import flows, handovers
from dispatch.enums import SmsStatus
from dispatch.ladder import callbacks, calls
from dispatch.ladder import service as ladder
from dispatch.ladder.schemas import (
    CallbackIn,
    CallbackPublic,
    CallbacksDuePublic,
    CallIn,
    CallPublic,
    CallQueuePublic,
    ClaimPublic,
    CloseIn,
    LeadStatePublic,
    ReceiptIn,
    ReceiptPublic,
    RefuseIn,
    ReleasePublic,
    TierIn,
    TransferIn,
)
from dispatch.policy import PolicyDep
from service.core import clock
from service.core.auth import Principal, RequireRole, Role
from service.core.db import SessionDep
from service.core.money import cny
from service.core.openapi import error_responses
from service.core.params import Id

router = APIRouter(prefix="/api/v1", tags=["ladder"])

Limit = Annotated[int, Query(ge=1, le=500)]
Center = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander, Role.operator))]
Command = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander))]
Gateway = Annotated[Principal, Depends(RequireRole(gateway=True))]


async def _act(session, fn) -> dict:
    """Run one sync use case on this request's connection → the lead's state after it."""
    return await session.run_sync(lambda s: ladder.lead_state(s, fn(s)))


@router.post("/leads/{lead_id}/sign", response_model=LeadStatePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="签收: sign the lead off (admin, commander, operator)")
async def sign(lead_id: Id, session: SessionDep, who: Center, policy: PolicyDep):
    return await _act(session, lambda s: flows.sign(s, lead_id, who, policy))


@router.post("/leads/{lead_id}/tier", response_model=LeadStatePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="Override the tier with a reason; deadlines recomputed (admin, commander)")
async def override(lead_id: Id, body: TierIn, session: SessionDep, who: Command, policy: PolicyDep):
    return await _act(session, lambda s: flows.override_tier(s, lead_id, body.tier, body.reason, who, policy))


@router.post("/leads/{lead_id}/transfer", response_model=LeadStatePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="移交 with a reason: to a district code of the city, a handover that waits for that district's "
                     "/transfer/accept (admin, commander, operator; an operator's waits for a commander's review "
                     "when the policy says transfer.review); to any other unit, the lead leaves (admin, commander)")
async def transfer(lead_id: Id, body: TransferIn, session: SessionDep, who: Center, policy: PolicyDep):
    return await _act(session, lambda s: handovers.transfer_lead(s, lead_id, body.to, body.reason, who, policy))


@router.post("/leads/{lead_id}/transfer/accept", response_model=LeadStatePublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="接收: the receiving district takes the lead handed to it (admin, commander, operator of that "
                     "district, or the city center)")
async def accept(lead_id: Id, session: SessionDep, who: Center, policy: PolicyDep):
    return await session.run_sync(lambda s: ladder.lead_state(s, handovers.accept_transfer(s, lead_id, who, policy)))


@router.post("/leads/{lead_id}/transfer/refuse", response_model=LeadStatePublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="The receiving district refuses the handover with a reason; the sender keeps the lead "
                     "(admin, commander, operator of that district, or the city center)")
async def refuse(lead_id: Id, body: RefuseIn, session: SessionDep, who: Center, policy: PolicyDep):
    return await session.run_sync(
        lambda s: ladder.lead_state(s, handovers.refuse_transfer(s, lead_id, body.reason, who, policy)))


@router.post("/leads/{lead_id}/close", response_model=LeadStatePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="Close with an outcome and amounts; schedules the callback and withdraws open offers "
                     "(admin, commander, operator)")
async def close(lead_id: Id, body: CloseIn, session: SessionDep, who: Center, policy: PolicyDep):
    return await _act(session, lambda s: flows.close(s, lead_id, body.outcome, who, policy, note=body.note,
                                                     loss_cny=body.loss_cny, saved_cny=body.saved_cny))


@router.get("/calls/queue", response_model=CallQueuePublic, responses=error_responses(401, 403, 422),
            summary="Leads waiting for a call, most urgent deadline first; full phones, audited "
                    "(admin, commander, operator)")
async def call_queue(session: SessionDep, who: Center, policy: PolicyDep, limit: Limit = 50):
    return {"items": await session.run_sync(lambda s: calls.call_queue(s, who, limit, policy))}


@router.post("/calls/next", response_model=ClaimPublic, responses=error_responses(401, 403),
             summary="The desk's 下一条: claim the most urgent lead waiting for a call that nobody else holds "
                     "(for the policy's desk.claim_for); full phone, audited (admin, commander, operator)")
async def call_next(session: SessionDep, who: Center, policy: PolicyDep):
    return await session.run_sync(lambda s: calls.claim_next(s, who, policy))


@router.delete("/leads/{lead_id}/claim", response_model=ReleasePublic, responses=error_responses(401, 403, 404, 409),
               summary="Give a claimed lead back to the call queue (the operator's own; a commander's any)")
async def release_claim(lead_id: Id, session: SessionDep, who: Center):
    return await session.run_sync(lambda s: calls.release_claim(s, lead_id, who))


@router.post("/leads/{lead_id}/calls", response_model=CallPublic, status_code=201, responses=error_responses(401, 403, 404, 409, 422),
             summary="Record a call and let the ladder escalate (admin, commander, operator)")
async def record_call(lead_id: Id, body: CallIn, session: SessionDep, who: Center, policy: PolicyDep):
    def run(s):
        lead, attempt, steps = flows.record_call(s, lead_id, body.result, body.outcome, body.note, who, policy)
        return {"id": attempt.id, "lead_id": lead_id, "result": attempt.result, "outcome": attempt.outcome,
                "rules": [x.rule for x in steps], "lead": ladder.lead_state(s, lead)}
    return await session.run_sync(run)


@router.get("/callbacks/due", response_model=CallbacksDuePublic, responses=error_responses(401, 403, 422),
            summary="回访 due now, oldest first; full phones, audited (admin, commander, operator)")
async def callbacks_due(session: SessionDep, who: Center, limit: Limit = 100):
    return {"items": await session.run_sync(lambda s: callbacks.callbacks_due(s, who, limit))}


@router.post("/leads/{lead_id}/callbacks", response_model=CallbackPublic, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Record a callback attempt; `not_reached` is tried again on the policy's [callback] schedule, "
                     "`defrauded` records the loss and reopens the lead (admin, commander, operator)")
async def record_callback(lead_id: Id, body: CallbackIn, session: SessionDep, who: Center, policy: PolicyDep):
    def run(s):
        lead, cb, retry = flows.record_callback(s, lead_id, body.result, body.loss_cny, body.note, who, policy)
        return {"id": cb.id, "lead_id": lead_id, "result": cb.result, "loss_cny": cny(cb.loss_cny),
                "done_at": cb.done_at, "attempt": cb.attempt, "done": cb.result in callbacks.REACHED,
                "next_attempt_due_at": clock.iso(retry.due_at) if retry else None, "lead": ladder.lead_state(s, lead)}
    return await session.run_sync(run)


@router.post("/sms/receipts", response_model=ReceiptPublic, responses=error_responses(401, 403, 404, 422),
             summary="Delivery receipt from the SMS gateway (the gateway's API key: create-api-key --gateway, "
                     "or the key named SMS_GATEWAY_KEY_NAME)")
async def sms_receipt(request: Request, body: ReceiptIn, session: SessionDep, who: Gateway, policy: PolicyDep):
    changed, escalated = await session.run_sync(
        lambda s: flows.sms_receipt(s, body.message_id, SmsStatus(body.status), policy))
    return {"message_id": body.message_id, "status": body.status, "changed": changed, "escalated": escalated}
