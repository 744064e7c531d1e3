"""REST for squads (contract.md "Squads and assignments"): duty status, location, squads as the
screens read them, and the answers to offers. Each route names who may call it; the use cases
are dispatch.field's, and a visit's arrival and completion go through dispatch.flows. The session
dependency commits; pushes and jobs leave with that commit (the outbox)."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dispatch import flows
from dispatch.field import service as svc
from dispatch.field import squads
from dispatch.field.schemas import (
    AssignmentList,
    AssignmentPublic,
    CompleteIn,
    DeclineIn,
    LocationIn,
    LocationPublic,
    PhoneTimeIn,
    StatusIn,
    StatusPublic,
    TeamList,
    TeamPublic,
    TeamStatus,
)
from dispatch.field.squads import FieldCfg, Presence
from dispatch.policy import PolicyDep
from service.core.auth import ALL_ROLES, SQUAD_ROLES, Principal, RequireRole
from service.core.db import SessionDep
from service.core.idempotency import idempotent
from service.core.openapi import error_responses
from service.core.params import Code, Id

router = APIRouter(prefix="/api/v1", tags=["squads"])

Squad = Annotated[Principal, Depends(RequireRole(*SQUAD_ROLES))]
Anyone = Annotated[Principal, Depends(RequireRole(*ALL_ROLES))]


async def run(session, fn, *args):
    """One use case on the request's unit of work (the sync service runs in the session's greenlet)."""
    return await session.run_sync(lambda s: fn(s, *args))


async def once(request: Request, session, who: Principal, fn, *args):
    """A squad's action, applied once per `Idempotency-Key` (the field page resends what it made offline)."""
    return await idempotent(request, session, who.name, lambda: run(session, fn, *args))


IDEMPOTENT = "Send an `Idempotency-Key` header to make a resend safe: the same key by the same user gets the first answer again."


# ---------------------------------------------------------------- squads


@router.put("/teams/me/status", response_model=StatusPublic, responses=error_responses(401, 403, 404, 422),
            summary="Set my squad's duty status (police, auxiliary, grid_worker)")
async def put_status(body: StatusIn, request: Request, session: SessionDep, who: Squad):
    return await once(request, session, who, squads.set_status, who, body.status)


@router.post("/teams/me/location", response_model=LocationPublic, responses=error_responses(401, 403, 404, 422),
             summary="Report my squad's location (police, auxiliary, grid_worker)")
async def post_location(body: LocationIn, request: Request, session: SessionDep, who: Squad):
    return await once(request, session, who, squads.set_location, who, body.lon, body.lat, body.crs.value,
                      body.accuracy_m, body.at)


@router.get("/teams", response_model=TeamList, responses=error_responses(401, 403, 422),
            summary="Squads with status, location and its age, open assignments (any signed-in user; "
                    "phones masked unless center or own squad)")
async def get_teams(session: SessionDep, who: Anyone, cfg: FieldCfg, status: TeamStatus | None = None):
    items = await session.run_sync(lambda s: squads.list_teams(s, who, cfg, status))
    return {"items": items}


@router.get("/teams/{code}", response_model=TeamPublic, responses=error_responses(401, 403, 404, 422),
            summary="One squad with its members (any signed-in user; phones masked unless center or own squad)")
async def get_team(code: Code, session: SessionDep, who: Anyone, cfg: FieldCfg):
    return await session.run_sync(lambda s: squads.team_detail(s, code, who, cfg))


# ---------------------------------------------------------------- assignments


@router.get("/assignments", response_model=AssignmentList, responses=error_responses(401, 403, 422),
            summary="Assignments, newest first (squads: their own only; center: all, `mine` = accepted by me)")
async def get_assignments(session: SessionDep, who: Anyone, mine: bool = False,
                          status: Annotated[str | None, Query(max_length=32, pattern=r"^[a-z_]+$")] = None,
                          team_code: Annotated[str | None, Query(max_length=64, pattern=r"^[^\x00]+$")] = None,
                          limit: Annotated[int, Query(ge=1, le=500)] = 50):
    items = await session.run_sync(lambda s: svc.list_assignments(s, who, mine, status, team_code, limit))
    return {"items": items}


@router.get("/assignments/{assignment_id}", response_model=AssignmentPublic, responses=error_responses(401, 403, 404, 422),
            summary="One assignment with its delivery per member (its squad, or the center)")
async def get_assignment(assignment_id: Id, session: SessionDep, who: Anyone):
    items = await session.run_sync(lambda s: svc.get_assignment(s, assignment_id, who))
    return items


@router.post("/assignments/{assignment_id}/accept", response_model=AssignmentPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Accept an offer for my squad; the first accept wins, another gets 409 (squad members)",
             description=IDEMPOTENT)
async def post_accept(assignment_id: Id, request: Request, session: SessionDep, who: Squad,
                      body: PhoneTimeIn | None = None):
    return await once(request, session, who, svc.accept, assignment_id, who, body.at if body else None)


@router.post("/assignments/{assignment_id}/decline", response_model=AssignmentPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Decline an offer: it goes to the next squad (squad members)", description=IDEMPOTENT)
async def post_decline(assignment_id: Id, request: Request, session: SessionDep, who: Squad, cfg: FieldCfg,
                       online: Presence, body: DeclineIn | None = None):
    return await once(request, session, who, svc.decline, assignment_id, who, body.reason if body else None, cfg,
                      online)


@router.post("/assignments/{assignment_id}/arrive", response_model=AssignmentPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="On scene (squad members); `at` = when, by the phone (made offline, sent later)",
             description=IDEMPOTENT)
async def post_arrive(assignment_id: Id, request: Request, session: SessionDep, who: Squad, policy: PolicyDep,
                      body: PhoneTimeIn | None = None):
    return await once(request, session, who, flows.arrive, assignment_id, who, policy, body.at if body else None)


@router.post("/assignments/{assignment_id}/checkin", response_model=AssignmentPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="报平安: the squad on scene is safe; the next check-in is due the policy's field.checkin_every "
                     "later, a missed one is an alarm at the center (squad members)", description=IDEMPOTENT)
async def post_checkin(assignment_id: Id, request: Request, session: SessionDep, who: Squad, policy: PolicyDep,
                       body: PhoneTimeIn | None = None):
    return await once(request, session, who, flows.checkin, assignment_id, who, policy, body.at if body else None)


@router.post("/assignments/{assignment_id}/complete", response_model=AssignmentPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Visit done with its outcome; the lead is closed (squad members)", description=IDEMPOTENT)
async def post_complete(assignment_id: Id, body: CompleteIn, request: Request, session: SessionDep, who: Squad,
                        policy: PolicyDep):
    return await once(request, session, who, flows.complete_visit, assignment_id, who, body.completion(), policy)
