"""What an SMS gateway calls back: Kannel's delivery reports (`dlr-url`) and replies (`sms-service`).
Kannel calls plain GET URLs, so the gateway's API key comes in the query (`key`), and a reply is
answered with an empty body: Kannel sends nothing back to the person."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field

from dispatch import flows, outbox
from dispatch.ladder import sms
from dispatch.policy import PolicyDep
from service.core.db import SessionDep
from service.core.errors import Forbidden, Unauthorized, ValidationFailed
from service.core.openapi import error_responses

router = APIRouter(prefix="/api/v1/sms/kannel", tags=["sms"])


async def gateway_key(request: Request, key: Annotated[str, Query(
        min_length=1, max_length=200, description="The SMS gateway's API key (create-api-key --gateway, or the key named SMS_GATEWAY_KEY_NAME)")]):
    grant = await request.app.state.api_keys.lookup(request, key)
    if grant is None:
        raise Unauthorized("key: unknown or revoked API key")
    if not (grant.gateway or grant.name == request.app.state.settings.sms_gateway_key_name):
        raise Forbidden("key: only the SMS gateway's API key (create-api-key --gateway) may call this")


GatewayKey = Depends(gateway_key)


class DlrPublic(BaseModel):
    id: int = Field(description="Our sms_message id")
    status: int = Field(description="Kannel's code: 1 delivered, 2 failed, 4 buffered, 8 accepted by the SMSC, "
                                    "16 rejected by the SMSC")
    dlr: str
    final: bool = Field(description="1, 2 and 16 end the message; 4 and 8 are kept and wait for more")
    changed: bool
    escalated: bool


@router.get("/dlr", response_model=DlrPublic, dependencies=[GatewayKey], responses=error_responses(401, 403, 404, 422),
            summary="Kannel's delivery report (dlr-url): `%d` as status, our message id as id")
async def kannel_dlr(session: SessionDep, policy: PolicyDep, id: Annotated[int, Query(ge=1, le=2**62)],
                     status: Annotated[int, Query(description="Kannel's %d: 1, 2, 4, 8 or 16")]):
    if status not in sms.KANNEL_DLR:
        raise ValidationFailed([{"field": "status", "message": "Kannel's DLR code: one of 1, 2, 4, 8, 16"}])

    def run(s):
        gateway_message_id, final = sms.kannel_dlr(s, id, status)
        if final is None:
            return False, False
        return flows.sms_receipt(s, gateway_message_id, final, policy)

    changed, escalated = await session.run_sync(run)
    return {"id": id, "status": status, "dlr": sms.KANNEL_DLR[status][0], "final": sms.KANNEL_DLR[status][1] is not None,
            "changed": changed, "escalated": escalated}


@router.get("/mo", response_class=Response, dependencies=[GatewayKey], responses={
    200: {"description": "Empty: Kannel sends nothing back", "content": {"text/plain": {}}},
    **error_responses(401, 403, 422)},
    summary="A reply (MO) from Kannel's sms-service: `from=%p&to=%P&text=%a`. A squad member's 1 / 2 accepts / "
            "declines the offer SMS it answers; a warned person's reply goes on the lead's timeline and the board")
async def kannel_mo(request: Request, session: SessionDep,
                    sender: Annotated[str, Query(alias="from", min_length=3, max_length=32, pattern=r"^\+?[0-9 -]+$")],
                    text: Annotated[str, Query(max_length=2000)] = "",
                    to: Annotated[str | None, Query(max_length=32)] = None):
    redis, cfg = request.app.state.redis, request.app.state.field_config
    await session.run_sync(lambda s: flows.sms_reply(s, sender, to, text, cfg, lambda names: outbox.online(redis, names)))
    return Response(status_code=200, content=b"", media_type="text/plain")
