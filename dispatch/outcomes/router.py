"""/api/v1/cases, /stats, /stats/ranking, /people (history, a person's page, split), /reports/monthly.
Each route names who may call it."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from dispatch.access import stats_district
from dispatch.models import Rejection
from dispatch.outcomes import cases as case_service
from dispatch.outcomes import linking, people, report, stats
from dispatch.outcomes.schemas import (
    CaseAnswer,
    CaseBatchAnswer,
    CaseBatchIn,
    CaseIn,
    CasePublic,
    PersonHistory,
    PersonIn,
    PersonPage,
    RankingAnswer,
    SplitAnswer,
    SplitIn,
    StatsAnswer,
)
from service.core import clock
from service.core.auth import CASES, CenterUser, LeadPusher, Principal, RequireRole, Role
from service.core.bodies import documented_body, json_body
from service.core.db import SessionDep, separate_unit
from service.core.errors import Forbidden, NotFound, ValidationFailed, field_errors
from service.core.openapi import error_responses
from service.core.params import Id, Time
from service.core.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["outcomes"])
Command = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander))]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def _reject(session, actor: str, raw, errs: list[dict]) -> None:
    case_id = raw.get("case_id") if isinstance(raw, dict) else None
    session.add(Rejection(actor=actor, source=case_service.CASE_REJECTION_SOURCE,
                          source_id=case_id[:128] if isinstance(case_id, str) and "\x00" not in case_id else None,
                          errors=errs))


def may_push_cases(who: Principal) -> None:
    """Cases come from the police's case system: a key bound to lead sources pushes them only when
    `cases` is among its sources (`create-api-key --source cases`)."""
    if who.sources is not None and CASES not in who.sources:
        raise Forbidden("this API key may not push cases (create it with --source cases)")


@router.post("/cases", response_model=CaseAnswer, openapi_extra=documented_body(CaseIn),
             summary="Push one case report (source API key, or admin/commander/operator); idempotent on case_id",
             responses={201: {"model": CaseAnswer, "description": "Stored"}, **error_responses(400, 401, 403, 422)},
             status_code=200)
async def push_case(request: Request, session: SessionDep, who: LeadPusher):
    may_push_cases(who)
    raw = await json_body(request)
    case, errs = case_service.validate_case(raw)
    if case is None:
        async with separate_unit(request) as s:  # the refusal is recorded though the request fails
            await _reject(s, who.actor, raw, field_errors(errs))
        raise ValidationFailed(field_errors(errs))
    answers = await case_service.store_cases(session, [case], who.actor)
    row_id, created, pwo = answers[case.case_id]
    return JSON({"id": row_id, "case_id": case.case_id, "duplicate": not created, "post_warning_of": pwo},
                status_code=201 if created else 200)


@router.post("/cases/batch", response_model=CaseBatchAnswer, openapi_extra=documented_body(CaseBatchIn),
             summary="Push up to 1,000 case reports (source API key, or admin/commander/operator); "
                     "one bad case never fails the others", responses=error_responses(400, 401, 403, 422))
async def push_cases(request: Request, session: SessionDep, who: LeadPusher):
    may_push_cases(who)
    raw = await json_body(request)
    items = raw.get("cases") if isinstance(raw, dict) else None
    limit = request.app.state.settings.max_batch
    if not isinstance(items, list) or not 1 <= len(items) <= limit:
        raise ValidationFailed([{"field": "cases", "message": f"must be a list of 1 to {limit} cases"}])
    results: list[dict] = []
    good = []
    for i, item in enumerate(items):
        case, errs = case_service.validate_case(item)
        if case is None:
            await _reject(session, who.actor, item, field_errors(errs))
            results.append({"index": i, "status": "rejected", "errors": field_errors(errs)})
        else:
            good.append(case)
            results.append({"index": i, "case_id": case.case_id})
    answers = await case_service.store_cases(session, good, who.actor)
    first: set[str] = set()
    for r in results:
        if "case_id" in r:
            row_id, created, pwo = answers[r["case_id"]]
            r.update(id=row_id, post_warning_of=pwo,
                     status="accepted" if created and r["case_id"] not in first else "duplicate")
            first.add(r["case_id"])
    return JSON({"results": results})


@router.get("/cases/{case_id}", response_model=CasePublic, responses=error_responses(401, 403, 404, 422),
            summary="One case with its post-warning match (admin/commander/operator)")
async def get_case(case_id: Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[^\x00]+$")],
                   session: SessionDep, _: CenterUser):
    found = await case_service.read_case(session, case_id)
    if found is None:
        raise NotFound(f"case {case_id} not found")
    return JSON(found)


@router.get("/stats", response_model=StatsAnswer, responses=error_responses(401, 403, 422),
            summary="KPIs grouped by street, beat, team, tier, fraud type, source, day or district over received "
                    "time; a district's people count their district's leads only (admin/commander/operator)")
async def get_stats(session: SessionDep, who: CenterUser, group_by: stats.GroupBy = stats.GroupBy.street,
                    since: Annotated[Time | None, Query(alias="from", description="received at or after; "
                                                            "default: 30 days before `to`")] = None,
                    until: Annotated[Time | None, Query(alias="to", description="received before; "
                                                            "default: now")] = None):
    try:
        since, until = stats.default_range(since, until, clock.now())
    except OverflowError:
        raise ValidationFailed([{"field": "to", "message": "out of range"}]) from None
    if since >= until:
        raise ValidationFailed([{"field": "from", "message": "must be before `to`"}])
    rows, total = await stats.kpi_rows(session, group_by, since, until, clock.now(), stats_district(who))
    return JSON({"group_by": group_by, "from": since.isoformat(), "to": until.isoformat(), "total": total,
                 "rows": rows, "rejections": await stats.rejection_counts(session, since, until)})


MonthQuery = Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", description="YYYY-MM (center time)",
                                  examples=["2026-10"])]


@router.get("/stats/ranking", response_model=RankingAnswer, responses=error_responses(401, 403, 422),
            summary="Streets of a month, worst first (逆排名), the quarter's three worst marked for "
                    "supervision (挂牌督办) (admin/commander/operator)")
async def get_ranking(session: SessionDep, who: CenterUser, month: MonthQuery,
                      by: Annotated[Literal["street", "district"], Query(
                          description="street (default), or district: the city center ranks its districts")] = "street"):
    _check_month(month)
    if by == "district" and stats_district(who) is not None:
        raise ValidationFailed([{"field": "by", "message": "only the city center ranks districts"}])
    return JSON(await stats.ranking(session, month, clock.now(), stats_district(who), stats.GroupBy(by)))


def _check_month(month: str) -> None:
    if not 1900 <= int(month[:4]) <= 9998:
        raise ValidationFailed([{"field": "month", "message": "year out of range 1900..9998"}])


@router.post("/people/history", response_model=PersonHistory, openapi_extra=documented_body(PersonIn),
             responses=error_responses(400, 401, 403, 422),
             summary="Every warning, call, SMS, visit, callback and case of one person across leads "
                     "(admin/commander/operator); the read is audited")
async def person_history(request: Request, session: SessionDep, who: CenterUser):
    raw = await json_body(request)
    person = people.person_of(raw)
    found = await people.history(session, person, who)
    await session.commit()  # the access log rows
    return JSON(found)


@router.get("/people/{person_id}", response_model=PersonPage, responses=error_responses(401, 403, 404, 422),
            summary="一人一档: one person — identifiers (masked), warned in 30 days and visits, every warning, call, "
                    "SMS, visit, callback and case (masked) (admin/commander/operator); the read is audited")
async def person_page(person_id: Id, session: SessionDep, who: CenterUser):
    found = await people.page(session, person_id, who, clock.now())
    if found is None:
        raise NotFound(f"person {person_id} not found")
    await session.commit()  # the access log rows
    return JSON(found)


@router.post("/people/{person_id}/split", response_model=SplitAnswer, openapi_extra=documented_body(SplitIn),
             responses=error_responses(400, 401, 403, 404, 409, 422),
             summary="Split an identifier linked to the person wrongly into a new person with the leads that carry "
                     "it (admin, commander); a `person_split` event on each lead moved")
async def split_person(person_id: Id, request: Request, session: SessionDep, who: Command):
    raw = await json_body(request)
    kind, value = people.person_of({k: v for k, v in raw.items() if k != "reason"} if isinstance(raw, dict) else raw)
    reason = raw.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > 500 or "\x00" in reason:
        raise ValidationFailed([{"field": "reason", "message": "required: why the link was wrong (1 to 500 characters)"}])
    return JSON(await session.run_sync(lambda s: linking.split(s, person_id, kind, value, reason.strip(), who)))


@router.get("/reports/monthly", response_class=Response, responses={
    200: {"content": {XLSX: {"schema": {"type": "string", "format": "binary"}}},
          "description": "月通报: summary, street ranking (with a chart), beats, squads, post-warning cases"},
    **error_responses(401, 403, 422)}, summary="The monthly report as an .xlsx workbook (admin/commander/operator)")
async def monthly_report(session: SessionDep, who: CenterUser, month: MonthQuery):
    _check_month(month)
    data = await report.build_monthly(session, month, clock.now(), stats_district(who))
    return Response(report.to_xlsx(data), media_type=XLSX,
                    headers={"Content-Disposition": f'attachment; filename="quanzu-{month}.xlsx"'})
