"""/api/v1/reviews (倒查 of post-warning cases) and /api/v1/feedback (反馈 to the sources: the
registered sources, the dead-letter list and its retry). Each route names who may call it."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from dispatch.outcomes import feedback, reviews, stats
from dispatch.outcomes.review_schemas import (
    FeedbackDead,
    FeedbackDeliveryPublic,
    FeedbackSources,
    Review,
    ReviewList,
)
from service.core import clock
from service.core.auth import CenterUser, Principal, RequireRole, Role
from service.core.db import SessionDep
from service.core.errors import NotFound, ValidationFailed
from service.core.openapi import error_responses
from service.core.params import Code, Id, Time
from service.core.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["reviews"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
Admin = Annotated[Principal, Depends(RequireRole(Role.admin))]
Commanding = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander))]
CaseId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]


@router.get("/reviews", response_model=ReviewList, responses=error_responses(401, 403, 422),
            summary="倒查: the reviews of post-warning cases reported in [from, to) (admin/commander/operator)")
async def list_reviews(session: SessionDep, _: CenterUser,
                       since: Annotated[Time | None, Query(alias="from", description="reported at or after; "
                                                               "default: 30 days before `to`")] = None,
                       until: Annotated[Time | None, Query(alias="to", description="reported before; "
                                                               "default: now")] = None,
                       limit: Annotated[int, Query(ge=1, le=10_000)] = 1000):
    try:
        since, until = stats.default_range(since, until, clock.now())
    except OverflowError:
        raise ValidationFailed([{"field": "to", "message": "out of range"}]) from None
    if since >= until:
        raise ValidationFailed([{"field": "from", "message": "must be before `to`"}])
    return JSON({"from": clock.iso(since), "to": clock.iso(until),
                 "items": await reviews.list_reviews(session, since, until, limit)})


async def _review(session, case_id: str) -> dict:
    found = await reviews.review(session, case_id)
    if found is None:
        raise NotFound(f"no review of case {case_id} (no such case, or it matched no warning)")
    return found


@router.get("/reviews/{case_id}", response_model=Review, responses=error_responses(401, 403, 404, 422),
            summary="倒查 of one case: every action on every lead of the victim with its time and actor, the "
                    "deadlines met or missed, who was told; masked (admin/commander/operator). Printable: /review")
async def get_review(case_id: CaseId, session: SessionDep, _: CenterUser):
    return JSON(await _review(session, case_id))


@router.get("/reviews/{case_id}/xlsx", response_class=Response, responses={
    200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}}, "description": "倒查 workbook"},
    **error_responses(401, 403, 404, 422)}, summary="倒查 of one case as an .xlsx workbook (admin/commander/operator)")
async def review_xlsx(case_id: CaseId, session: SessionDep, _: CenterUser):
    data = await _review(session, case_id)
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in case_id)
    return Response(reviews.to_xlsx(data), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="review-{safe}.xlsx"'})


@router.get("/feedback/sources", response_model=FeedbackSources, responses=error_responses(401, 403, 422),
            summary="反馈: the sources that registered a feedback URL (`quanzu source-feedback`), with their "
                    "deliveries pending, delivered and dead; never the key (admin)")
async def feedback_sources(session: SessionDep, _: Admin):
    return JSON({"items": await feedback.list_sources(session)})


@router.get("/feedback/dead", response_model=FeedbackDead, responses=error_responses(401, 403, 422),
            summary="反馈 dead-letter list: deliveries given up after `FEEDBACK_MAX_ATTEMPTS` (admin/commander/operator)")
async def feedback_dead(session: SessionDep, _: CenterUser, source: Code | None = None,
                        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000):
    return JSON({"items": await feedback.list_dead(session, source, limit)})


@router.post("/feedback/dead/{delivery_id}/retry", response_model=FeedbackDeliveryPublic,
             responses=error_responses(401, 403, 404, 422),
             summary="Put a dead delivery back in its source's queue, its attempts counted afresh (admin/commander)")
async def feedback_retry(delivery_id: Id, session: SessionDep, _: Commanding):
    return JSON(await feedback.retry_dead(session, delivery_id))
