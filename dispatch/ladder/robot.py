"""Results of calls made outside quanzu (a robot caller, AI 外呼; the 96110 system): the platform
posts each call's result and its own labels, and the ladder takes it as it takes an operator's call.

    TagMap.apply      the platform's result and tags → quanzu's result, outcome, unmapped tags (pure)
    load_tag_map      robot_tags.toml (or ROBOT_TAGS_FILE), checked rule by rule
    find_lead         the lead by id or by (source, source_id), locked; 404 otherwise
    already_recorded  a result resent with the same platform call id is the call recorded before

The call is recorded by `dispatch.flows.record_robot_call` through the same flow as an operator's."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlmodel import Session

from dispatch.enums import CallChannel, CallResult, Outcome
from dispatch.ladder import calls
from dispatch.ladder.service import lock_lead
from dispatch.models import CallAttempt, Lead
from service.core.errors import Conflict, NotFound


@dataclass(frozen=True, slots=True)
class Rule:
    tags: frozenset[str]
    result: CallResult | None = None
    outcome: Outcome | None = None


@dataclass(frozen=True, slots=True)
class TagMap:
    rules: tuple[Rule, ...]

    def apply(self, result: CallResult, tags: list[str]) -> tuple[CallResult, Outcome | None, list[str]]:
        """→ (result, outcome, tags no rule names). The first rule (file order) naming one of the
        tags decides the result, the first naming one decides the outcome; an outcome means the
        person was reached, so the call is `connected`."""
        given = set(tags)
        mapped: set[str] = set()
        new_result = outcome = None
        for rule in self.rules:
            hit = rule.tags & given
            if not hit:
                continue
            mapped |= hit
            if rule.result is not None and new_result is None:
                new_result = rule.result
            if rule.outcome is not None and outcome is None:
                outcome = rule.outcome
        if outcome is not None:
            new_result = CallResult.connected
        return new_result or result, outcome, [t for t in dict.fromkeys(tags) if t not in mapped]


def parse_tag_map(text: str, where: str) -> TagMap:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    rules = []
    for i, r in enumerate(doc.get("rule", [])):
        tags = r.get("tags")
        if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t for t in tags):
            raise ValueError(f"{where}: rule[{i}].tags must be a list of labels")
        if set(r) - {"tags", "result", "outcome"}:
            raise ValueError(f"{where}: rule[{i}] may only have tags, result, outcome")
        try:
            result = CallResult(r["result"]) if "result" in r else None
            outcome = Outcome(r["outcome"]) if "outcome" in r else None
        except ValueError as exc:
            raise ValueError(f"{where}: rule[{i}]: {exc}") from exc
        if result is None and outcome is None:
            raise ValueError(f"{where}: rule[{i}] needs a result or an outcome")
        rules.append(Rule(frozenset(tags), result, outcome))
    return TagMap(tuple(rules))


@lru_cache(maxsize=4)
def load_tag_map(path: Path | None = None) -> TagMap:
    if path is None:
        return parse_tag_map(resources.files("dispatch.ladder").joinpath("robot_tags.toml").read_text("utf-8"),
                             "dispatch/ladder/robot_tags.toml")
    return parse_tag_map(Path(path).read_text("utf-8"), str(path))


def find_lead(session: Session, lead_id: int | None, source: str | None, source_id: str | None) -> int:
    """The lead the result is about, locked (a resent result waits for the first one's transaction)."""
    if lead_id is None:
        lead_id = session.execute(select(Lead.id).where(Lead.source == source, Lead.source_id == source_id)).scalar()
        if lead_id is None:
            raise NotFound(f"no lead from {source} with source_id {source_id!r}")
    return lock_lead(session, lead_id).id


def already_recorded(session: Session, who_name: str, lead_id: int, external_id: str | None) -> CallAttempt | None:
    """The call this platform already reported under `external_id` (its own call id); 409 when that
    id was reported for another lead."""
    if external_id is None:
        return None
    seen = session.execute(select(CallAttempt).where(CallAttempt.actor == who_name,
                                                     CallAttempt.channel == CallChannel.robot,
                                                     CallAttempt.external_id == external_id)).scalar()
    if seen is not None and seen.lead_id != lead_id:
        raise Conflict(f"call_id {external_id!r} was reported for lead {seen.lead_id}")
    return seen


@dataclass(frozen=True, slots=True)
class Report:
    """One call as the platform reports it (contract: `POST /api/v1/calls/results`)."""
    result: CallResult
    at: datetime
    lead_id: int | None = None
    source: str | None = None
    source_id: str | None = None
    duration_s: int | None = None
    tags: tuple[str, ...] = ()
    note: str | None = None
    call_id: str | None = None


def describe(attempt: CallAttempt, report: Report) -> CallAttempt:
    return calls.describe_call(attempt, CallChannel.robot, duration_s=report.duration_s, at=report.at,
                               tags=list(report.tags) or None, external_id=report.call_id)
