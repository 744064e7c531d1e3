"""The center's dispatch over HTTP: offer a lead's visit to a squad of its choosing (指派), and see
which squads the matching would ask. The squads' own routes are in mobile_api."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from dispatch.field import service
from dispatch.field.offers import candidates
from dispatch.field.schemas import AssignIn, AssignmentPublic, CandidateList
from dispatch.field.squads import FieldCfg, Presence
from dispatch.field.visits import open_visit
from dispatch.models import Lead
from service.core.auth import CENTER_ROLES, Principal, RequireRole, Role
from service.core.db import SessionDep
from service.core.errors import NotFound
from service.core.openapi import error_responses
from service.core.params import Id

router = APIRouter(prefix="/api/v1", tags=["squads"])

Center = Annotated[Principal, Depends(RequireRole(*CENTER_ROLES))]
Dispatcher = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander, Role.operator))]




@router.post("/leads/{lead_id}/assign", response_model=AssignmentPublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="Offer the lead's visit to a squad of the center's choosing (admin, commander, operator)")
async def post_assign(lead_id: Id, body: AssignIn, session: SessionDep, who: Dispatcher, cfg: FieldCfg,
                      online: Presence):
    return await session.run_sync(lambda s: service.assign(s, lead_id, body.team_code, who, cfg, online))


@router.get("/leads/{lead_id}/candidates", response_model=CandidateList, responses=error_responses(401, 403, 404, 422),
            summary="Squads the matching would ask for this lead, best first, and why others cannot "
                    "(admin, commander, operator)")
async def get_candidates(lead_id: Id, session: SessionDep, _: Center, cfg: FieldCfg,
                         k: Annotated[int, Query(ge=1, le=50)] = 8):
    def go(s):
        lead = s.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"lead {lead_id} not found")
        return candidates(s, lead, open_visit(s, lead_id), cfg, k)
    return {"lead_id": lead_id, "items": await session.run_sync(go)}
