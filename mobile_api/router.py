"""REST for squads and the center's dispatch actions (contract.md "Squads and assignments").
Each route names who may call it; the use cases are in dispatch.assignments / dispatch.teams."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from dispatch import assignments as svc
from dispatch import events, teams
from dispatch.models import Lead
from mobile_api.schemas import (
    AssignIn,
    AssignmentList,
    AssignmentPublic,
    CandidateList,
    CompleteIn,
    DeclineIn,
    LocationIn,
    LocationPublic,
    StatusIn,
    StatusPublic,
    TeamList,
    TeamPublic,
    TeamStatus,
)
from service.core.auth import ALL_ROLES, CENTER_ROLES, SQUAD_ROLES, Principal, RequireRole, Role
from service.core.db import SessionDep
from service.core.errors import NotFound
from service.core.openapi import error_responses
from service.core.params import Code, Id

router = APIRouter(prefix="/api/v1", tags=["squads"])

Squad = Annotated[Principal, Depends(RequireRole(*SQUAD_ROLES))]
Anyone = Annotated[Principal, Depends(RequireRole(*ALL_ROLES))]
Center = Annotated[Principal, Depends(RequireRole(*CENTER_ROLES))]
Dispatcher = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander, Role.operator))]


def cfg(request: Request) -> svc.FieldConfig:
    return request.app.state.field_config


def online(request: Request):
    redis = request.app.state.redis
    return lambda names: events.online(redis, names)


async def run(session, fn, *args):
    """One use case, one transaction: the sync service runs in the session's greenlet; its pushes
    and jobs leave with the commit."""
    out = await session.run_sync(lambda s: fn(s, *args))
    await session.commit()
    return out


# ---------------------------------------------------------------- squads


@router.put("/teams/me/status", response_model=StatusPublic, responses=error_responses(401, 403, 404, 422),
            summary="Set my squad's duty status (police, auxiliary, grid_worker)")
async def put_status(body: StatusIn, session: SessionDep, who: Squad):
    return await run(session, teams.set_status, who, body.status.value)


@router.post("/teams/me/location", response_model=LocationPublic, responses=error_responses(401, 403, 404, 422),
             summary="Report my squad's location (police, auxiliary, grid_worker)")
async def post_location(body: LocationIn, session: SessionDep, who: Squad):
    return await run(session, teams.set_location, who, body.lon, body.lat, body.crs.value, body.accuracy_m,
                     body.at)


@router.get("/teams", response_model=TeamList, responses=error_responses(401, 403, 422),
            summary="Squads with status, location and its age, open assignments (any signed-in user; "
                    "phones masked unless center or own squad)")
async def get_teams(request: Request, session: SessionDep, who: Anyone, status: TeamStatus | None = None):
    items = await session.run_sync(lambda s: teams.list_teams(s, who, cfg(request), status))
    return {"items": items}


@router.get("/teams/{code}", response_model=TeamPublic, responses=error_responses(401, 403, 404, 422),
            summary="One squad with its members (any signed-in user; phones masked unless center or own squad)")
async def get_team(code: Code, request: Request, session: SessionDep, who: Anyone):
    return await session.run_sync(lambda s: teams.team_detail(s, code, who, cfg(request)))


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
             summary="Accept an offer for my squad; the first accept wins, another gets 409 (squad members)")
async def post_accept(assignment_id: Id, session: SessionDep, who: Squad):
    return await run(session, svc.accept, assignment_id, who)


@router.post("/assignments/{assignment_id}/decline", response_model=AssignmentPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Decline an offer: it goes to the next squad (squad members)")
async def post_decline(assignment_id: Id, request: Request, session: SessionDep, who: Squad,
                       body: DeclineIn | None = None):
    return await run(session, svc.decline, assignment_id, who, body.reason if body else None, cfg(request),
                     online(request))


@router.post("/assignments/{assignment_id}/arrive", response_model=AssignmentPublic,
             responses=error_responses(401, 403, 404, 409, 422), summary="On scene (squad members)")
async def post_arrive(assignment_id: Id, session: SessionDep, who: Squad):
    return await run(session, svc.arrive, assignment_id, who)


@router.post("/assignments/{assignment_id}/complete", response_model=AssignmentPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Visit done with its outcome; the lead is closed (squad members)")
async def post_complete(assignment_id: Id, body: CompleteIn, session: SessionDep, who: Squad):
    return await run(session, svc.complete, assignment_id, who, body.completion())


# ---------------------------------------------------------------- the center's dispatch


@router.post("/leads/{lead_id}/assign", response_model=AssignmentPublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="Offer the lead's visit to a squad of the center's choosing (admin, commander, operator)")
async def post_assign(lead_id: Id, body: AssignIn, request: Request, session: SessionDep, who: Dispatcher):
    return await run(session, svc.assign, lead_id, body.team_code, who, cfg(request), online(request))


@router.get("/leads/{lead_id}/candidates", response_model=CandidateList, responses=error_responses(401, 403, 404, 422),
            summary="Squads the matching would ask for this lead, best first, and why others cannot "
                    "(admin, commander, operator)")
async def get_candidates(lead_id: Id, request: Request, session: SessionDep, _: Center,
                         k: Annotated[int, Query(ge=1, le=50)] = 8):
    def go(s):
        lead = s.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"lead {lead_id} not found")
        return svc.candidates(s, lead, cfg(request), k)
    return {"lead_id": lead_id, "items": await session.run_sync(go)}
