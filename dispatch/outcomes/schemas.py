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
    post_warning_of: LeadRef | None


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
    """One group's KPIs; every rate is null when its denominator is empty (README "KPIs")."""
    model_config = ConfigDict(extra="allow")
    key: str | None
    leads: int
    people: int
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
    callbacks_due: int
    callbacks_done: int
    callback_rate: float | None
    post_warning_cases: int
    post_warning_rate: float | None
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


class PersonHistory(BaseModel):
    person: dict[str, Any]
    leads: list[dict[str, Any]]
    calls: list[dict[str, Any]]
    sms: list[dict[str, Any]]
    visits: list[dict[str, Any]]
    callbacks: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    totals: dict[str, int]
