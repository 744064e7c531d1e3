"""Wire models of the squads' API (contract.md "Squads and assignments"), apart from the tables."""
from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from dispatch.assignments import Completion
from dispatch.enums import Outcome
from service.core.params import Text

MONEY = 10 ** 12  # Numeric(14, 2)


class TeamStatus(StrEnum):
    on_duty = "on_duty"
    off_duty = "off_duty"
    busy = "busy"


class Crs(StrEnum):
    wgs84 = "wgs84"
    gcj02 = "gcj02"
    bd09 = "bd09"


class StatusIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "on_duty"}]})
    status: TeamStatus


class StatusPublic(BaseModel):
    team_code: str
    status: TeamStatus


class LocationIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"lon": 120.3483933, "lat": 36.0472158, "crs": "gcj02", "accuracy_m": 12, "at": "2026-10-01T09:30:00+08:00"}]})
    model_config = ConfigDict(allow_inf_nan=False, json_schema_extra=model_config["json_schema_extra"])
    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    crs: Crs = Crs.wgs84
    accuracy_m: float | None = Field(None, ge=0, le=1e6)
    at: AwareDatetime | None = Field(None, description="When the fix was taken (2000–2100); default now")

    @field_validator("at")
    @classmethod
    def _plausible(cls, v):
        if v is not None and not 2000 <= v.year <= 2100:
            raise ValueError("must be a time between the years 2000 and 2100")
        return v


class LocationPublic(BaseModel):
    team_code: str
    lon: float = Field(description="WGS-84")
    lat: float
    at: str | None
    kept: str | None = Field(None, description="Set when an older fix was ignored")


class DeclineIn(BaseModel):
    reason: Text(500) | None = None


class CompleteIn(BaseModel):
    """见面劝阻 outcome. `checklist`: the visit check list of domain.md (四查看·三询问·一保护)."""
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "outcome": "dissuaded", "met_in_person": True, "note": "已劝阻，卸载诈骗APP", "loss_cny": 0, "saved_cny": 20000,
        "checklist": {"looked": ["call_log", "sms", "chat_apps", "apps", "transfers"],
                      "asked": ["who", "why", "to_whom"], "protected": ["stop_payment", "uninstall", "family"]}}]})
    outcome: Outcome
    met_in_person: bool
    model_config = ConfigDict(allow_inf_nan=False, json_schema_extra=model_config["json_schema_extra"])
    note: Text(4000) | None = None
    loss_cny: float | None = Field(None, ge=0, lt=MONEY)
    saved_cny: float | None = Field(None, ge=0, lt=MONEY)
    checklist: dict[str, Any] | None = None

    @field_validator("checklist")
    @classmethod
    def _small(cls, v):
        if v is None:
            return v
        try:
            text = orjson.dumps(v)
        except orjson.JSONEncodeError:  # a lone surrogate: not text PostgreSQL can store
            raise ValueError("must be valid UTF-8 text") from None
        if len(text) > 8000:
            raise ValueError("at most 8,000 bytes of JSON")
        if b"\\u0000" in text:  # PostgreSQL's JSONB refuses NUL characters
            raise ValueError("must not contain NUL characters")
        return v

    def completion(self) -> Completion:
        def money(x):
            return None if x is None else Decimal(str(round(x, 2)))
        return Completion(self.outcome, self.met_in_person, self.note, money(self.loss_cny), money(self.saved_cny),
                          self.checklist)


class AssignIn(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"team_code": "T370299001-01"}]})
    team_code: Text(64, 1)


class LeadBrief(BaseModel):
    """What a squad sees of a lead in an offer (masked phone, no ID number)."""
    id: int
    tier: str | None
    fraud_type: str
    warning_type: str
    risk_level: int
    beat_code: str | None
    street_code: str | None
    lon: float | None
    lat: float | None
    subject: dict[str, Any]


class DeliveryPublic(BaseModel):
    username: str
    pushed_at: str | None
    acked_at: str | None
    sms_at: str | None
    state: str = Field(description="acked | pushed | sms | not_delivered")
    delivered: bool


class AssignmentPublic(BaseModel):
    """One offer of a visit to one squad. `choice`: why this squad, and the next candidates."""
    id: int
    visit_id: int
    lead_id: int
    team_code: str
    attempt: int
    status: str = Field(description="offered | accepted | declined | expired | withdrawn | arrived | completed")
    offered_at: str | None
    expires_at: str | None
    accepted_by: str | None
    accepted_at: str | None
    declined_reason: str | None
    arrived_at: str | None
    completed_at: str | None
    outcome: str | None
    met_in_person: bool | None
    note: str | None
    loss_cny: float | None
    saved_cny: float | None
    checklist: dict[str, Any] | None
    choice: dict[str, Any]
    lead: LeadBrief | None = None
    delivery: list[DeliveryPublic] | None = None


class AssignmentList(BaseModel):
    items: list[AssignmentPublic]


class CandidatePublic(BaseModel):
    team_code: str
    reason: str = Field(description="own_beat | adjacent_beat | nearest | own_beat_stale")
    available: bool
    why_not: str | None = Field(description="off_duty | busy | workload | tried | stale_location")
    distance_m: float | None
    on_duty: bool
    open_assignments: int
    position: str = Field(description="live | home | station | none: where the distance is measured from")
    location_age_s: float | None


class CandidateList(BaseModel):
    lead_id: int
    items: list[CandidatePublic]


class MemberPublic(BaseModel):
    role: str
    name: str
    phone: str | None = Field(description="Masked unless the caller is the center or this squad")
    badge_no: str | None
    username: str | None


class TeamPublic(BaseModel):
    code: str
    name: str
    beat_code: str | None
    status: str
    home: dict[str, float | None] | None
    last_location: dict[str, Any] | None = Field(description="{lon, lat, at, age_s} of the last live fix")
    location_stale: bool
    position_source: str = Field(description="live | home | station | none")
    position: dict[str, float | None]
    open_assignments: int
    members: list[MemberPublic] | None = None


class TeamList(BaseModel):
    items: list[TeamPublic]




