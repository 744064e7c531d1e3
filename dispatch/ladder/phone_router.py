"""Calls whose results come from elsewhere, over HTTP: the desk's dial through its SIP line (the
phone network answers), the outcome the operator gives after a connected dial, and robot callers'
results (contract.md "Calls, SMS, callbacks"). Routes load, call one flow or service, and answer;
the session dependency commits and then sends the dial to its line's worker (the outbox)."""
from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from dispatch import flows
from dispatch.enums import CallResult, DialState, Outcome
from dispatch.ladder import phone, robot
from dispatch.ladder import service as ladder
from dispatch.ladder.schemas import LeadStatePublic
from dispatch.models import Lead
from dispatch.policy import PolicyDep
from service.core import clock
from service.core.auth import Principal, RequireRole, Role, source_refused
from service.core.db import SessionDep
from service.core.errors import Forbidden, ValidationFailed
from service.core.openapi import error_responses
from service.core.params import Code, Id, Number, Text, Time

router = APIRouter(prefix="/api/v1", tags=["calls"])

Center = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander, Role.operator))]
Source = Annotated[Principal, Depends(RequireRole(sources=True))]
FUTURE_SLACK = timedelta(minutes=5)  # a platform's clock a little ahead of ours is not an error


class DialIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"line": "desk-3"}, {}]})
    line: Code | None = Field(None, description="A line of SIP_LINES; default: the line named after the "
                                                "operator, else `default`")


class DialPublic(BaseModel):
    id: int
    lead_id: int
    line: str
    state: DialState = Field(description="queued → dialling → done (a call recorded: `call_id`), failed (the "
                                         "line did not carry it), unknown (its worker stopped mid-call)")
    actor: str
    requested_at: str | None
    started_at: str | None
    answered_at: str | None
    ended_at: str | None
    result: CallResult | None
    sip_status: int | None = Field(description="The SIP final answer, e.g. 486 (Busy Here)")
    sip_reason: str | None
    call_id: int | None
    error: str | None


class OutcomeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"outcome": "dissuaded", "note": "已停止转账"}]})
    outcome: Outcome
    note: Text(2000) | None = None


class OutcomePublic(BaseModel):
    id: int
    lead_id: int
    result: CallResult
    outcome: Outcome | None
    channel: str
    duration_s: int | None
    rules: list[str] = Field(description="The ladder rules the outcome fired (dissuaded_by_phone, …)")
    lead: LeadStatePublic


class RobotResultIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"source": "national_platform", "source_id": "NP-20240501-0001", "result": "connected",
         "at": "2024-05-01T10:02:00+08:00", "duration_s": 48, "tags": ["已转账"], "call_id": "robot-88812"},
        {"lead_id": 42, "result": "no_answer", "at": "2024-05-01T10:02:00+08:00"}]})
    lead_id: Annotated[int | None, Number] = Field(None, ge=1, le=2**63 - 1)
    source: Code | None = None
    source_id: Text(128, 1) | None = None
    result: CallResult
    at: Time = Field(description="When the call was made (a time without offset is the center's)")
    duration_s: Annotated[int | None, Number] = Field(None, ge=0, le=86_400)
    tags: list[Text(64, 1)] = Field(default_factory=list, max_length=50,
                                    description="The platform's own labels; mapped by robot_tags.toml")
    note: Text(2000) | None = None
    call_id: Text(128, 1) | None = Field(None, description="The platform's call id: a result resent with it "
                                                           "is recorded once")


class RobotResultPublic(BaseModel):
    id: int
    lead_id: int
    result: CallResult
    outcome: Outcome | None
    tags: list[str]
    unmapped_tags: list[str] = Field(description="Labels no rule of the mapping names (kept on the call)")
    rules: list[str]
    duplicate: bool = Field(description="The same call_id was recorded before: nothing new was done")
    lead: LeadStatePublic


@router.post("/leads/{lead_id}/dial", response_model=DialPublic, status_code=202,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="Dial the person from the desk's SIP line; the phone network's answer becomes the call's "
                     "result (admin, commander, operator)")
async def dial(lead_id: Id, request: Request, session: SessionDep, who: Center, body: DialIn | None = None):
    line = phone.line_for(request.app.state.settings.sip_lines, body.line if body else None, who)
    return await session.run_sync(lambda s: phone.dial_public(phone.request_dial(s, lead_id, line, who)))


@router.get("/dials/{dial_id}", response_model=DialPublic, responses=error_responses(401, 403, 404, 422),
            summary="A dial and how it ended (admin, commander, operator)")
async def get_dial(dial_id: Id, session: SessionDep, who: Center):
    return await session.run_sync(lambda s: phone.dial_public(phone.get_dial(s, dial_id)))


@router.post("/calls/{call_id}/outcome", response_model=OutcomePublic, responses=error_responses(401, 403, 404, 409, 422),
             summary="What the person said on a connected call (a dial's): the same call gets its outcome and the "
                     "ladder acts on it (admin, commander, operator)")
async def call_outcome(call_id: Id, body: OutcomeIn, session: SessionDep, who: Center, policy: PolicyDep):
    def run(s):
        lead, attempt, steps = flows.record_call_outcome(s, call_id, body.outcome, body.note, who, policy)
        return {"id": attempt.id, "lead_id": lead.id, "result": attempt.result, "outcome": attempt.outcome,
                "channel": attempt.channel, "duration_s": attempt.duration_s, "rules": [x.rule for x in steps],
                "lead": ladder.lead_state(s, lead)}
    return await session.run_sync(run)


@router.post("/calls/results", response_model=RobotResultPublic, status_code=201,
             responses=error_responses(401, 403, 404, 409, 422),
             summary="A call made outside quanzu (a robot caller, 96110): its result and labels, recorded as a call "
                     "(a source's API key)")
async def robot_result(body: RobotResultIn, request: Request, session: SessionDep, who: Source, policy: PolicyDep):
    if (body.lead_id is None) == (body.source is None and body.source_id is None):
        raise ValidationFailed([{"field": "lead_id", "message": "give lead_id, or source and source_id"}])
    if body.lead_id is None and (body.source is None or body.source_id is None):
        field = "source" if body.source is None else "source_id"
        raise ValidationFailed([{"field": field, "message": "source and source_id go together"}])
    if body.at > clock.now() + FUTURE_SLACK:
        raise ValidationFailed([{"field": "at", "message": "in the future"}])
    tags = robot.load_tag_map(request.app.state.settings.robot_tags_file)
    report = robot.Report(result=body.result, at=body.at, lead_id=body.lead_id, source=body.source,
                          source_id=body.source_id, duration_s=body.duration_s, tags=tuple(body.tags),
                          note=body.note, call_id=body.call_id)

    def run(s):
        known = s.get(Lead, body.lead_id) if body.lead_id is not None else None
        if refused := (source_refused(who, body.source) or known and source_refused(who, known.source, "lead_id")):
            raise Forbidden([refused])
        lead, attempt, steps, duplicate = flows.record_robot_call(s, report, tags, who, policy)
        sent = list(attempt.tags or [])
        return {"id": attempt.id, "lead_id": lead.id, "result": attempt.result, "outcome": attempt.outcome,
                "tags": sent, "unmapped_tags": tags.apply(CallResult(attempt.result), sent)[2],
                "rules": [x.rule for x in steps], "duplicate": duplicate, "lead": ladder.lead_state(s, lead)}
    return await session.run_sync(run)
