"""The response ladder over HTTP: center actions on a lead (签收, tier, transfer, close), calls,
callbacks, SMS receipts and policy replay. Routes load, call one service, commit; the services
are sync (shared with the workers) and run on the request's connection via `run_sync`."""
from __future__ import annotations

import tomllib
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dispatch import actions
from dispatch.enums import SmsStatus
from dispatch.ladder_schemas import (
    CallbackIn,
    CallbackPublic,
    CallbacksDuePublic,
    CallIn,
    CallPublic,
    CallQueuePublic,
    CloseIn,
    LeadStatePublic,
    ReceiptIn,
    ReceiptPublic,
    ReplayIn,
    ReplayPublic,
    TierIn,
    TransferIn,
)
from dispatch.replay import replay, replay_query
from dispatch.tiering import active_policy, parse_policy
from service.core.auth import Principal, RequireRole, Role
from service.core.db import SessionDep
from service.core.errors import Forbidden, ValidationFailed
from service.core.openapi import error_responses
from service.core.params import Id

router = APIRouter(prefix="/api/v1", tags=["ladder"])

Limit = Annotated[int, Query(ge=1, le=500)]
Center = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander, Role.operator))]
Command = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander))]
Gateway = Annotated[Principal, Depends(RequireRole(sources=True))]


async def _act(session, fn) -> dict:
    """Run one sync service on this request's connection, answer the lead's state, commit."""
    def run(s):
        return actions.lead_state(s, fn(s))
    state = await session.run_sync(run)
    await session.commit()
    return state


@router.post("/leads/{lead_id}/sign", response_model=LeadStatePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="签收: sign the lead off (admin, commander, operator)")
async def sign(lead_id: Id, session: SessionDep, who: Center):
    return await _act(session, lambda s: actions.sign_lead(s, lead_id, who))


@router.post("/leads/{lead_id}/tier", response_model=LeadStatePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="Override the tier with a reason; deadlines recomputed (admin, commander)")
async def override(lead_id: Id, body: TierIn, session: SessionDep, who: Command):
    return await _act(session, lambda s: actions.override_tier(s, lead_id, body.tier, body.reason, who,
                                                               active_policy()))


@router.post("/leads/{lead_id}/transfer", response_model=LeadStatePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="移交: transfer the lead to another unit with a reason (admin, commander)")
async def transfer(lead_id: Id, body: TransferIn, session: SessionDep, who: Command):
    return await _act(session, lambda s: actions.transfer_lead(s, lead_id, body.to, body.reason, who))


@router.post("/leads/{lead_id}/close", response_model=LeadStatePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="Close with an outcome and amounts; schedules the callback (admin, commander, operator)")
async def close(lead_id: Id, body: CloseIn, session: SessionDep, who: Center):
    def run(s):
        lead = actions.lock_lead(s, lead_id)
        return actions.close_lead(s, lead, body.outcome, actor=who.actor, note=body.note, loss_cny=body.loss_cny,
                                  saved_cny=body.saved_cny, policy=active_policy(), rule="center")
    return await _act(session, run)


@router.get("/calls/queue", response_model=CallQueuePublic, responses=error_responses(401, 403, 422),
            summary="Leads waiting for a call, most urgent deadline first; full phones, audited "
                    "(admin, commander, operator)")
async def call_queue(session: SessionDep, who: Center, limit: Limit = 50):
    items = await session.run_sync(lambda s: actions.call_queue(s, who, limit))
    await session.commit()  # the access log rows
    return {"items": items}


@router.post("/leads/{lead_id}/calls", response_model=CallPublic, status_code=201, responses=error_responses(401, 403, 404, 409, 422),
             summary="Record a call and let the ladder escalate (admin, commander, operator)")
async def record_call(lead_id: Id, body: CallIn, session: SessionDep, who: Center):
    def run(s):
        attempt, steps = actions.record_call(s, lead_id, body.result, body.outcome, body.note, who, active_policy())
        return {"id": attempt.id, "lead_id": lead_id, "result": attempt.result, "outcome": attempt.outcome,
                "rules": [x.rule for x in steps], "lead": actions.lead_state(s, actions.lock_lead(s, lead_id))}
    out = await session.run_sync(run)
    await session.commit()
    return out


@router.get("/callbacks/due", response_model=CallbacksDuePublic, responses=error_responses(401, 403, 422),
            summary="回访 due now, oldest first; full phones, audited (admin, commander, operator)")
async def callbacks_due(session: SessionDep, who: Center, limit: Limit = 100):
    items = await session.run_sync(lambda s: actions.callbacks_due(s, who, limit))
    await session.commit()
    return {"items": items}


@router.post("/leads/{lead_id}/callbacks", response_model=CallbackPublic, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Record a callback; `defrauded` records the loss and reopens the lead (admin, commander, operator)")
async def record_callback(lead_id: Id, body: CallbackIn, session: SessionDep, who: Center):
    def run(s):
        cb = actions.record_callback(s, lead_id, body.result, body.loss_cny, body.note, who, active_policy())
        return {"id": cb.id, "lead_id": lead_id, "result": cb.result,
                "loss_cny": float(cb.loss_cny) if cb.loss_cny is not None else None, "done_at": cb.done_at,
                "lead": actions.lead_state(s, actions.lock_lead(s, lead_id))}
    out = await session.run_sync(run)
    await session.commit()
    return out


@router.post("/sms/receipts", response_model=ReceiptPublic, responses=error_responses(401, 403, 404, 422),
             summary="Delivery receipt from the SMS gateway (the gateway's API key, named SMS_GATEWAY_KEY_NAME)")
async def sms_receipt(request: Request, body: ReceiptIn, session: SessionDep, who: Gateway):
    if who.name != request.app.state.settings.sms_gateway_key_name:
        raise Forbidden("only the SMS gateway's API key may post receipts")
    changed, escalated = await session.run_sync(
        lambda s: actions.apply_receipt(s, body.message_id, SmsStatus(body.status), active_policy()))
    await session.commit()
    return {"message_id": body.message_id, "status": body.status, "changed": changed, "escalated": escalated}


def candidate_policy(text: str):
    """A policy from TOML text; 422 on `policy` naming the bad key."""
    try:
        return parse_policy(tomllib.loads(text), "candidate")
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed([{"field": "policy", "message": f"not valid TOML: {exc}"}]) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValidationFailed([{"field": "policy", "message": str(exc)}]) from None


@router.post("/policy/replay", response_model=ReplayPublic, responses=error_responses(401, 403, 422),
             summary="Run a candidate policy over stored leads, nothing written (admin, commander)")
async def policy_replay(body: ReplayIn, session: SessionDep, _: Command):
    policy = candidate_policy(body.policy)
    if body.since and body.until and body.since >= body.until:
        raise ValidationFailed([{"field": "until", "message": "must be after since"}])
    rows = (await session.execute(replay_query(body.since, body.until))).all()
    return replay(rows, policy)



