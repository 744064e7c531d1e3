"""/api/v1/policy/replay: what a candidate policy would change, before the center adopts it."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from dispatch.policy import parse_policy, read_policy_toml
from dispatch.triage.replay import replay, replay_query
from dispatch.triage.schemas import ReplayIn, ReplayPublic
from service.core.auth import Principal, RequireRole, Role
from service.core.db import SessionDep
from service.core.errors import ValidationFailed
from service.core.openapi import error_responses

router = APIRouter(prefix="/api/v1", tags=["ladder"])

Command = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander))]


def candidate_policy(text: str):
    """A policy from TOML text, parsed bounded (size, nesting); 422 on `policy` naming the bad key."""
    try:
        doc = read_policy_toml(text, "candidate")
    except ValueError as exc:
        raise ValidationFailed([{"field": "policy", "message": str(exc).removeprefix("candidate: ")}]) from None
    try:
        return parse_policy(doc, "candidate")
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
