"""The shift over HTTP: the queue of all open work, and the alarms (contract.md)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from dispatch.access import owned_leads
from dispatch.policy import PolicyDep
from dispatch.shift import alarms
from dispatch.shift.queue import Filters, queue_page
from dispatch.shift.schemas import AlarmList, AlarmPublic, QueuePage
from dispatch.shift.steps import ORDER
from service.core.auth import CENTER_ROLES, Principal, RequireRole
from service.core.db import SessionDep
from service.core.openapi import error_responses
from service.core.params import Id

router = APIRouter(prefix="/api/v1", tags=["shift"])

Center = Annotated[Principal, Depends(RequireRole(*CENTER_ROLES))]
CodeQ = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


@router.get("/queue", response_model=QueuePage, responses=error_responses(401, 403, 422),
            summary="Every open lead, most urgent first: tier, then time left to its current step's deadline "
                    "(masked; admin, commander, operator)")
async def get_queue(session: SessionDep, who: Center, policy: PolicyDep, street: CodeQ = None, beat: CodeQ = None,
                    tier: Annotated[str | None, Query(pattern=r"^P[0-3]$")] = None,
                    status: Annotated[str | None, Query(pattern=r"^(received|tiered|working|closed)$")] = None,
                    step: Annotated[str | None, Query(pattern="^(" + "|".join(ORDER) + ")$")] = None,
                    lead: Annotated[list[int] | None, Query(max_length=500, description="Only these leads (a screen "
                                                            "refreshing rows it was told changed)")] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                    cursor: Annotated[str | None, Query(max_length=200)] = None,
                    district: Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description=(
                        "only this district's leads (`city`: the city center's own); a district's people "
                        "see their own anyway"))] = None):
    f = Filters(street, beat, tier, status, step, tuple(lead or ()), owned_leads(who, district))
    return await session.run_sync(lambda s: queue_page(s, policy, f, limit, cursor))


@router.get("/alarms", response_model=AlarmList, responses=error_responses(401, 403, 422),
            summary="Active alarms (missed deadlines nobody acknowledged), highest level first (admin, commander, operator)")
async def get_alarms(session: SessionDep, who: Center, policy: PolicyDep,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200):
    items = await session.run_sync(lambda s: alarms.active(s, policy, limit, owned_leads(who)))
    return {"items": items, "levels": list(policy.shift.alarm_levels)}


@router.post("/alarms/{alarm_id}/ack", response_model=AlarmPublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="Acknowledge an alarm: it stops climbing (admin, commander, operator)")
async def ack_alarm(alarm_id: Id, session: SessionDep, who: Center, policy: PolicyDep):
    return await session.run_sync(lambda s: alarms.acknowledge(s, alarm_id, who, policy))
