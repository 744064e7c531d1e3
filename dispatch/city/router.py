"""The city over HTTP: handovers between its districts (contract.md). `POST /leads/{id}/transfer`
starts one and `/transfer/accept`, `/transfer/refuse` answer it (with the lead's other actions, in
the ladder's routes); the lists and the sending commander's review are here."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query

from dispatch import handovers
from dispatch.city import service as city
from dispatch.city.schemas import ReviewIn, TransferList, TransferPublic
from dispatch.policy import PolicyDep
from service.core.auth import CENTER_ROLES, Principal, RequireRole, Role
from service.core.db import SessionDep
from service.core.openapi import error_responses
from service.core.params import Id
from service.core.responses import JSON

router = APIRouter(prefix="/api/v1", tags=["city"])

Center = Annotated[Principal, Depends(RequireRole(*CENTER_ROLES))]
Command = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander))]


@router.get("/transfers", response_model=TransferList, responses=error_responses(401, 403, 422),
            summary="Handovers to (incoming) or from (outgoing) the caller's district, newest first; the city "
                    "center sees all (admin, commander, operator)")
async def transfers(session: SessionDep, who: Center,
                    direction: Literal["incoming", "outgoing"] = "incoming",
                    state: Annotated[Literal["review", "pending", "accepted", "refused", "expired", "cancelled"] | None,
                                     Query()] = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100):
    items = await session.run_sync(lambda s: city.list_transfers(s, who, direction, state, limit))
    return JSON({"items": items})


@router.post("/transfers/{transfer_id}/approve", response_model=TransferPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="A commander of the sending district lets an operator's handover go to the receiver "
                     "(policy transfer.review) (admin, commander)")
async def approve(transfer_id: Id, session: SessionDep, who: Command, policy: PolicyDep, body: ReviewIn | None = None):
    t = await session.run_sync(lambda s: handovers.review_transfer(s, transfer_id, True, body.note if body else None,
                                                               who, policy))
    return JSON(city.public(t))


@router.post("/transfers/{transfer_id}/reject", response_model=TransferPublic,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="A commander of the sending district stops an operator's handover: the lead stays "
                     "(admin, commander)")
async def reject(transfer_id: Id, session: SessionDep, who: Command, policy: PolicyDep, body: ReviewIn | None = None):
    t = await session.run_sync(lambda s: handovers.review_transfer(s, transfer_id, False, body.note if body else None,
                                                               who, policy))
    return JSON(city.public(t))
