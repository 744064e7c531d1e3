"""Wire models of the squads' API (contract.md "Squads and assignments"), apart from the tables."""
from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from dispatch.enums import Outcome, TeamStatus
from dispatch.field.service import Completion
from service.core.params import Bool, Number, Text

MONEY = 10 ** 12  # Numeric(14, 2)


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
    lon: Annotated[float, Number] = Field(ge=-180, le=180)
    lat: Annotated[float, Number] = Field(ge=-90, le=90)
    crs: Crs = Crs.wgs84
    accuracy_m: Annotated[float | None, Number] = Field(None, ge=0, le=1e6)
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


class _Items(BaseModel):
    # an item the list does not have is a client's mistake; "true" is not true
    model_config = ConfigDict(extra="forbid", strict=True)


class ChecklistLook(_Items):
    """四查看: what the squad looked at on the person's phone."""
    call_sms_logs: bool = Field(False, description="通话和短信记录")
    chat_apps: bool = Field(False, description="聊天软件")
    fraud_apps: bool = Field(False, description="是否装有涉诈App")
    large_transfers: bool = Field(False, description="大额转账记录")


class ChecklistAsk(_Items):
    """三询问: what the squad asked."""
    who_asked: bool = Field(False, description="谁让转账")
    why: bool = Field(False, description="为何转账")
    to_whom: bool = Field(False, description="转给了谁")


class ChecklistProtect(_Items):
    """一保护: what the squad did to protect the person."""
    payment_stopped: bool = Field(False, description="止付")
    app_uninstalled: bool = Field(False, description="卸载涉诈App")
    family_informed: bool = Field(False, description="告知家属")


class Checklist(_Items):
    """The visit check list of domain.md, 四查看·三询问·一保护: each item true when done; an item or a
    group left out is false."""
    look: ChecklistLook = Field(default_factory=ChecklistLook)
    ask: ChecklistAsk = Field(default_factory=ChecklistAsk)
    protect: ChecklistProtect = Field(default_factory=ChecklistProtect)


CHECKLIST_EXAMPLE = {"look": {"call_sms_logs": True, "chat_apps": True, "fraud_apps": True, "large_transfers": False},
                     "ask": {"who_asked": True, "why": True, "to_whom": True},
                     "protect": {"payment_stopped": True, "app_uninstalled": True, "family_informed": False}}


class PhoneTimeIn(BaseModel):
    """When it happened on the phone: an action made offline keeps its time (≤ 60 s ahead of the
    server's clock, not before the step it follows); the server's receipt time is kept beside it."""
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"at": "2026-12-06T10:05:00+08:00"}]})
    at: AwareDatetime | None = None


class CompleteIn(BaseModel):
    """见面劝阻 outcome, with the visit check list (`Checklist`) when the squad filled it in."""
    model_config = ConfigDict(allow_inf_nan=False, json_schema_extra={"examples": [{
        "outcome": "dissuaded", "met_in_person": True, "note": "已劝阻，卸载诈骗APP", "loss_cny": 0, "saved_cny": 20000,
        "checklist": CHECKLIST_EXAMPLE}]})
    outcome: Outcome
    met_in_person: Bool
    note: Text(4000) | None = None
    loss_cny: Annotated[float | None, Number] = Field(None, ge=0, lt=MONEY)
    saved_cny: Annotated[float | None, Number] = Field(None, ge=0, lt=MONEY)
    checklist: Checklist | None = None
    at: AwareDatetime | None = Field(None, description="When, by the phone (made offline, sent later)")

    def completion(self) -> Completion:
        def money(x):
            return None if x is None else Decimal(str(round(x, 2)))
        return Completion(self.outcome, self.met_in_person, self.note, money(self.loss_cny), money(self.saved_cny),
                          self.checklist.model_dump() if self.checklist else None, self.at)


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
    arrived_received_at: str | None = Field(None, description="When the server got the arrival (arrived_at is the phone's)")
    completed_received_at: str | None = None
    checkin_at: str | None = None
    checkin_due_at: str | None = Field(None, description="The next 报平安 due while on scene")
    backup: bool = Field(False, description="Offered as backup to a squad that is late")
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




