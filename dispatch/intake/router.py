"""/api/v1/leads and /api/v1/rejections. Each route names who may call it."""
from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Query, Request

from dispatch.enums import FraudType, LeadStatus, Source, Tier
from dispatch.intake import service
from dispatch.intake.schemas import (
    BatchIn,
    BatchOut,
    LeadAccepted,
    LeadDetail,
    LeadDuplicate,
    LeadIn,
    LeadPage,
    RejectionPage,
)
from dispatch.intake.storable import storable_body
from dispatch.metrics import LEADS_PUSHED
from service.core.auth import CenterUser, CurrentUser, LeadPusher, lead_pushers, source_refused
from service.core.bodies import documented_body, parse_json
from service.core.db import SessionDep, acquire
from service.core.errors import Forbidden, ValidationFailed
from service.core.openapi import error_responses
from service.core.params import Code, Id, Text, Time
from service.core.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["leads"])
# The single push's counters, looked up once (a labels() lookup per push is measurable).
_ACCEPTED, _DUPLICATE, _REJECTED = (LEADS_PUSHED.labels(v) for v in ("accepted", "duplicate", "rejected"))


async def _leads_body(request: Request) -> tuple[object, bool]:
    """→ (the parsed body, whether all its strings are storable: one scan for all its leads)."""
    body = await request.body()
    return parse_json(body), storable_body(body)


@router.post("/leads", status_code=202, openapi_extra=documented_body(LeadIn, in_components=True),
             response_model=LeadAccepted, summary="Push one lead (source API key, or admin/commander/operator)",
             responses={200: {"model": LeadDuplicate,
                              "description": "Duplicate: the same source+source_id was pushed before"},
                        **error_responses(401, 403)},
             description="A source's API key bound to sources (`create-api-key --source`) pushing as another "
                         "source: 403 naming `source`.")
async def push_lead(request: Request, who: LeadPusher) -> JSON:
    raw, storable = await _leads_body(request)
    if refused := source_refused(who, raw.get("source") if isinstance(raw, dict) else None):
        raise Forbidden([refused])
    try:
        taken = await service.take_lead(request.app.state.lead_writer, raw, who.actor, storable)
    except ValidationFailed:
        _REJECTED.inc()
        raise
    if not taken.created:
        _DUPLICATE.inc()
        return JSON({"id": taken.id, "duplicate": True}, status_code=200)
    _ACCEPTED.inc()
    urgent = [taken.id] if request.app.state.policy.urgent_lane(raw) else []
    request.app.state.after_commit.submit([taken.id], urgent)
    return JSON({"id": taken.id, "status": LeadStatus.received, "duplicate": False, "flags": taken.flags},
                status_code=202)


async def push_lead_direct(request: Request) -> JSON:
    """POST /api/v1/leads as served (service.core.fastpath.FastRoutes): the route above without
    FastAPI's routing and dependency solving, the cost of a single push measured by bench/ingest.py.
    The same checks: the caller (`lead_pushers`), then `push_lead`; no path parameter, so nothing
    for the district guard to check."""
    return await push_lead(request, await lead_pushers(request))


@router.post("/leads/batch", openapi_extra=documented_body(BatchIn, in_components=True), response_model=BatchOut,
             responses=error_responses(401, 403),
             summary="Push up to 1,000 leads (source API key, or admin/commander/operator)",
             description="A lead whose `source` the API key may not speak for is rejected with that reason; "
                         "the others are taken.")
async def push_batch(request: Request, who: LeadPusher):
    raw, storable = await _leads_body(request)
    leads = raw.get("leads") if isinstance(raw, dict) else None
    limit = request.app.state.settings.max_batch
    if not isinstance(leads, list):
        raise ValidationFailed([{"field": "leads", "message": "must be a list of leads"}])
    if not 1 <= len(leads) <= limit:
        raise ValidationFailed([{"field": "leads", "message": f"must hold 1 to {limit} leads, got {len(leads)}"}])
    async with acquire(request.app.state.intake_pool) as conn:
        async with conn.transaction():
            results, new_ids = await service.take_batch(conn, leads, who.actor, storable,
                                                        refuse=lambda x: source_refused(who, x.get("source")))
    urgent = request.app.state.policy.urgent_lane
    request.app.state.after_commit.submit(new_ids, [r["id"] for r, x in zip(results, leads)
                                                   if r.get("status") == "accepted" and urgent(x)])
    for verdict, n in Counter(r["status"] for r in results).items():
        LEADS_PUSHED.labels(verdict).inc(n)
    return JSON({"results": results})


@router.get("/leads", response_model=LeadPage, responses=error_responses(401, 403),
            summary="Leads, newest first, masked (any role; squads see their own). "
                    "`failed=true`: the leads processing gave up on")
async def list_leads(session: SessionDep, who: CurrentUser,
                     status: LeadStatus | None = None, tier: Tier | None = None,
                     street: Code | None = None, beat: Code | None = None, source: Source | None = None,
                     fraud_type: FraudType | None = None, since: Time | None = None,
                     until: Time | None = None, limit: Annotated[int, Query(ge=1, le=500)] = 50,
                     cursor: Text(64) | None = None,
                     failed: Annotated[bool | None, Query(description="only leads whose processing failed "
                                                          "`max_processing_attempts` times")] = None,
                     district: Annotated[Code | None, Query(description="only leads this district owns (`city`: "
                                                                         "the city center's own)")] = None):
    f = service.LeadFilter(status, tier, street, beat, source, fraud_type, since, until, failed, district)
    return JSON(await service.list_leads(session, f, who, limit, cursor))


@router.get("/leads/{lead_id}", response_model=LeadDetail, responses=error_responses(401, 403, 404),
            summary="One lead in full with placement, tier and timeline "
                    "(center roles, or the squad assigned to it); the read is audited")
async def get_lead(lead_id: Id, session: SessionDep, who: CurrentUser):
    return JSON(await service.read_lead(session, lead_id, who))  # the access log row commits with the session


@router.get("/rejections", response_model=RejectionPage, responses=error_responses(401, 403),
            summary="Rejected pushes with counts by field (center roles)")
async def rejections(session: SessionDep, _: CenterUser, source: Code | None = None,
                     since: Time | None = None, until: Time | None = None,
                     limit: Annotated[int, Query(ge=1, le=500)] = 100):
    return JSON(await service.list_rejections(session, source, since, until, limit))
