"""Wire models of cases, statistics, a person's history and reports (contract.md "Cases",
"Stats and reports"). Public schemas, apart from the tables."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from service.core.params import Number

CASE_EXAMPLE = {"case_id": "C37029920261001900062", "reported_at": "2026-10-01T01:09:56+08:00",
                "victim": {"phone": "17524934571", "id_number": None}, "fraud_type": "order_brushing",
                "loss_cny": 13252.82, "beat_code": "370299001-04"}


class VictimIn(BaseModel):
    phone: str | None = Field(None, description="Normalised like a lead's phone (spaces, +86)")
    id_number: str | None = Field(None, description="Spaces removed, x upper-cased")


class CaseIn(BaseModel):
    """发案: a fraud report actually filed."""
    model_config = ConfigDict(json_schema_extra={"examples": [CASE_EXAMPLE]})
    case_id: str = Field(min_length=1, max_length=128)
    reported_at: str = Field(description="ISO 8601; without offset taken as +08:00")
    victim: VictimIn
    fraud_type: str | None = Field(None, description="Unknown values are stored as `other`")
    loss_cny: Annotated[float | None, Number] = Field(None, ge=0, lt=1e12)
    beat_code: str | None = Field(None, max_length=64)


class CaseBatchIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"cases": [CASE_EXAMPLE]}]})
    cases: list[dict[str, Any]]


class LeadRef(BaseModel):
    id: int
    source: str
    source_id: str


class CaseAnswer(BaseModel):
    id: int
    case_id: str
    duplicate: bool
    post_warning_of: LeadRef | None = Field(description="The lead whose warning the victim had in the 30 days "
                                            "before the case, or null")


class VictimPublic(BaseModel):
    phone: str | None
    id_number: str | None


class CasePublic(BaseModel):
    id: int
    case_id: str
    reported_at: str
    victim: VictimPublic
    fraud_type: str
    loss_cny: float | None
    beat_code: str | None
    post_warning_of: LeadRef | None = Field(description="The warning the case is matched to (预警后发案): of the "
                                            "victim's warnings in the 30 days before, the same fraud type first, "
                                            "then the case's beat, then the newest")
    person_id: int | None = Field(None, description="The victim's person (一人一档): that of the matched lead, else "
                                  "the person the victim's phone, then ID number, is linked to")
    warning_lead_ids: list[int] = Field(default_factory=list, description="Every warning lead of the victim "
                                        "(their phone, ID number or person) pushed in the 30 days before the case")


class CaseBatchResult(BaseModel):
    index: int
    status: str = Field(description="accepted | duplicate | rejected")
    id: int | None = None
    case_id: str | None = None
    post_warning_of: LeadRef | None = None
    errors: list[dict[str, str]] | None = None


class CaseBatchAnswer(BaseModel):
    results: list[CaseBatchResult]


class StatsRow(BaseModel):
    """One group's KPIs; every rate is null when its denominator is empty (README "KPIs"). The work is
    counted once: a lead that joined another's work (一次预警一件事) is in `merged`, in no other count."""
    model_config = ConfigDict(extra="allow")
    key: str | None
    leads: int = Field(description="Pieces of work: leads received in the range that did not join another "
                                   "lead's work")
    merged: int = Field(description="Leads of the group that joined another lead's work (merged_into set) "
                                    "instead of starting their own: counted here only")
    people: int = Field(description="Distinct persons (一人一档) among `leads`")
    signed: int
    signed_in_time: int
    sign_in_time_rate: float | None
    calls: int = Field(description="leads with at least one call")
    connected: int = Field(description="leads with at least one connected call")
    connection_rate: float | None
    call_attempts: int
    sms_sent: int
    visits_required: int
    visits_done: int
    face_to_face_rate: float | None
    fund_visits_required: int
    fund_visits_done: int
    fund_face_to_face_rate: float | None
    closed_counted: int
    dissuaded: int
    dissuasion_rate: float | None
    callbacks_due: int = Field(description="回访 of closed leads whose first attempt is due by now (or made)")
    callbacks_done: int = Field(description="回访 answered safe or defrauded on some attempt; `not_reached` is "
                                            "retried ([callback] retry_after, max_attempts) and never done")
    callback_rate: float | None = Field(description="回访率 = callbacks_done / callbacks_due")
    post_warning_cases: int = Field(description="预警后发案 per case: cases matched to a warning of the group (the "
                                                "victim — phone, ID number or person — warned in the 30 days before)")
    post_warning_people: int = Field(description="预警后发案 per person: distinct persons of the group with at "
                                                 "least one post-warning case")
    post_warning_rate: float | None = Field(description="预警后发案率 = post_warning_people / people: the share of "
                                                        "warned people defrauded after a warning")
    attempts: int
    attempts_per_lead: float | None
    attempts_per_person: float | None
    sign_seconds_median: float | None
    sign_seconds_p90: float | None
    first_call_seconds_median: float | None
    first_call_seconds_p90: float | None
    on_scene_seconds_median: float | None
    on_scene_seconds_p90: float | None
    loss_cny: float
    saved_cny: float


class Rejections(BaseModel):
    total: int
    by_source: dict[str, int]
    by_reason: dict[str, int] = Field(description="by the field named in the error")


class StatsAnswer(BaseModel):
    group_by: str
    from_: str | None = Field(alias="from")
    to: str | None
    total: StatsRow
    rows: list[StatsRow]
    rejections: Rejections


class RankingRow(StatsRow):
    rank: int = Field(description="1 = worst (逆排名)")
    score: float | None = Field(description="mean of the street's rates (0..1), higher is better")
    quarter_score: float | None
    quarter_rank: int | None
    supervision: bool = Field(description="one of the three worst streets of the quarter so far (挂牌督办)")


class RankingAnswer(BaseModel):
    month: str
    quarter: str
    rows: list[RankingRow]


class PersonIn(BaseModel):
    """Exactly one of phone or id_number (in the body, so the number never sits in an access log)."""
    model_config = ConfigDict(json_schema_extra={"examples": [{"phone": "17524934571"}]})
    phone: str | None = Field(None, max_length=32)
    id_number: str | None = Field(None, max_length=32)


class PersonTotals(BaseModel):
    model_config = ConfigDict(extra="allow")
    warnings: int = Field(description="Leads that are their own piece of work (not merged into another)")
    leads: int = Field(description="Every lead listed, merged ones included")
    merged: int = Field(description="Leads that joined another lead's work")
    calls: int
    sms: int
    visits: int
    visits_on_scene: int
    callbacks: int = Field(description="Callback attempts")
    callbacks_done: int = Field(description="Attempts answered safe or defrauded")
    cases: int
    attempts: int = Field(description="Calls + warning SMS sent + squad arrivals")


class PersonHistory(BaseModel):
    person: dict[str, Any] = Field(description='The identifier asked for, the person it belongs to ("id": null when '
                                              'no lead of it was triaged yet) and all their identifiers')
    leads: list[dict[str, Any]] = Field(description="Every lead linked to the person, and every lead carrying "
                                                    "the identifiers (not linked yet), with person_id and merged_into")
    calls: list[dict[str, Any]]
    sms: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    callbacks: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    totals: PersonTotals


class PersonSummary(BaseModel):
    """What the lead, the queue and the person's page show: "warned N times in 30 days, M visits"."""
    warned_30d: int = Field(description="The person's warnings pushed in the last 30 days (leads that are their "
                                        "own work: a lead that joined another's is not a second warning)")
    visits: int = Field(description="Visits a squad made to the person (arrived or done), on any lead, ever")


class IdentifierPublic(BaseModel):
    kind: str = Field(description="phone | id_number")
    value: str = Field(description="Masked (138****5678, 3702**********1234)")
    lead_id: int | None = Field(description="The lead that brought it")
    since: str


class PersonSplitPublic(BaseModel):
    split_id: int
    at: str
    actor: str
    reason: str
    from_: int = Field(alias="from")
    into: int
    kind: str
    identifier: str | None = Field(description="Masked")
    lead_ids: list[int] = Field(description="The leads moved to the new person")


class PersonPage(PersonHistory):
    """一人一档: one person with everything that happened to them, numbers masked as lists are."""
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": 42, "requested_id": 42, "created_at": "2026-10-01T00:07:02+08:00", "merged_from": [57],
        "identifiers": [{"kind": "phone", "value": "166****7231", "lead_id": 1, "since": "2026-10-01T00:07:02+08:00"}],
        "splits": [], "person": {"warned_30d": 2, "visits": 1}, "leads": [], "calls": [], "sms": [], "visits": [],
        "callbacks": [], "cases": [], "totals": {"warnings": 2, "leads": 3, "merged": 1, "calls": 0, "sms": 0,
                                                 "visits": 0, "visits_on_scene": 0, "callbacks": 0,
                                                 "callbacks_done": 0, "cases": 0, "attempts": 0}}]})
    id: int = Field(description="The person now (a merged person's id answers with the one it became)")
    requested_id: int
    created_at: str
    merged_from: list[int] = Field(description="Persons merged into this one (a lead carried an identifier of each)")
    identifiers: list[IdentifierPublic]
    splits: list[PersonSplitPublic] = Field(description="Identifiers a commander split off, or split off into it")
    person: PersonSummary  # type: ignore[assignment]


class SplitIn(BaseModel):
    """Exactly one of phone or id_number: the identifier that was linked to the person wrongly."""
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"phone": "16639577231", "reason": "号码为家属共用, 非同一人"}]})
    phone: str | None = Field(None, max_length=32)
    id_number: str | None = Field(None, max_length=32)
    reason: str = Field(min_length=1, max_length=500)


class SplitAnswer(BaseModel):
    split_id: int
    person_id: int = Field(description="The person the identifier was split from")
    new_person_id: int = Field(description="The new person: the identifier and the leads that carry it")
    kind: str
    identifier: str | None = Field(description="Masked")
    lead_ids: list[int] = Field(description="Leads moved, each with a `person_split` event on its timeline")
    reason: str
    by: str
    at: str
