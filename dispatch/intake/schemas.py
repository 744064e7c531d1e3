"""Wire models for pushed leads (contract.md "Leads"). They document the API and hold
the normalised result of `dispatch.intake.validation.validate_lead`, which owns the rules."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatch.enums import FraudType, LeadStatus, LocationKind, Residency, Source, Tier, WarningType
from service.core.openapi import FieldErrorOut

LEAD_EXAMPLE: dict[str, Any] = {
    "source": "bank_fund_monitor", "source_id": "BF202610010000001",
    "pushed_at": "2026-10-01T00:06:49+08:00",
    "warning_type": "fund_transfer", "fraud_type": "fake_loan", "risk_level": 1,
    "subject": {"phone": "16639577231", "name": "邓博", "id_number": "370299198904085680",
                "residency": "resident"},
    "counterpart": {"account": "621098509484099975", "bank": "建设银行"},
    "amount_cny": 11208.77,
    "location": {"lon": 120.3483933, "lat": 36.0472158, "crs": "gcj02",
                 "accuracy_m": 15, "kind": "gps"},
}


class SubjectIn(BaseModel):
    """The person at risk."""
    phone: str | None = Field(None, description="Mainland mobile or landline; stored as digits only",
                              examples=["16639577231", "0532-88886666"])
    name: str | None = None
    id_number: str | None = Field(None, description="GB 11643 ID number (18 or 15 characters); "
                                  "a bad one is kept and flagged `id_number_invalid`")
    residency: Residency = Residency.unknown


class LocationIn(BaseModel):
    """A point (lon, lat, crs), or with `kind: address` an address alone, which the worker
    geocodes with the center's geocoder (placed_by `geocoder`; without one: placed as if no
    location were given, the reason in the placement)."""
    model_config = ConfigDict(json_schema_extra={"examples": [
        LEAD_EXAMPLE["location"], {"kind": "address", "address": "山东省青岛市市南区香港中路 9 号"}]})

    lon: float | None = Field(None, ge=-180, le=180, description="Required unless kind is address with an address")
    lat: float | None = Field(None, ge=-90, le=90, description="Required unless kind is address with an address")
    crs: str | None = Field(None, description="wgs84 | gcj02 | bd09; required with lon/lat", examples=["gcj02"])
    accuracy_m: float | None = Field(None, ge=0)
    kind: LocationKind | None = None
    address: str | None = Field(None, max_length=500, description="Street address; with kind address and no "
                                "lon/lat it is geocoded")


class LeadIn(BaseModel):
    """One pushed warning lead (预警线索)."""
    model_config = ConfigDict(json_schema_extra={"examples": [LEAD_EXAMPLE]})

    source: Source
    source_id: str = Field(min_length=1, max_length=128)
    pushed_at: AwareDatetime = Field(description="ISO 8601; a time without offset is taken as +08:00")
    warning_type: WarningType
    fraud_type: FraudType = Field(description="Unknown values are stored as `other` and flagged")
    fraud_type_raw: str | None = Field(None, description="The pushed fraud_type when it was unknown")
    risk_level: int = Field(ge=1, le=3, description="1 = high … 3 = low")
    subject: SubjectIn
    counterpart: dict[str, Any] = Field(default_factory=dict, description="Account, phone, app or URL of the fraudster")
    amount_cny: float | None = Field(None, ge=0)
    location: LocationIn | None = Field(None, description="May be null: placed by residence or center-handled")
    ongoing: bool = Field(False, description="Upstream hint: the fraud call/app contact is ongoing right now")


class BatchIn(BaseModel):
    """Up to 1,000 leads; each is validated on its own, so one bad lead never fails the others."""
    model_config = ConfigDict(json_schema_extra={"examples": [{"leads": [LEAD_EXAMPLE]}]})

    leads: list[dict[str, Any]]  # the limit is Settings.max_batch, enforced by the router


# ---------------------------------------------------------------- answers (public schemas, apart from tables)
# Routes answer with prebuilt JSON (the intake hot path skips response validation); these models
# are what /openapi.json promises, and the fuzzer (tests/service/test_fuzz.py) checks answers against them.


class LeadAccepted(BaseModel):
    """202: the lead is committed; a worker places and tiers it."""
    id: int
    status: LeadStatus
    duplicate: bool = Field(description="Always false here")
    flags: list[str] = Field(description="Soft defects and markers, e.g. id_number_invalid")


class LeadDuplicate(BaseModel):
    """200: the same source + source_id was pushed before; nothing new was created."""
    id: int
    duplicate: bool = Field(description="Always true here")


class BatchItemOut(BaseModel):
    index: int = Field(description="Position in the pushed `leads`")
    status: Literal["accepted", "duplicate", "rejected"]
    id: int | None = None
    flags: list[str] | None = None
    errors: list[FieldErrorOut] | None = Field(None, description="Why a lead was rejected, by field")


class BatchOut(BaseModel):
    results: list[BatchItemOut]


class SubjectPublic(BaseModel):
    phone: str | None = Field(description="Masked in lists (138****5678)")
    name: str | None
    id_number: str | None = Field(description="Masked in lists; null for auxiliary and grid workers")
    residency: Residency


class LeadSummary(BaseModel):
    """The masked shape of lists, queues and the screen."""
    id: int
    source: Source
    source_id: str
    pushed_at: datetime
    received_at: datetime
    warning_type: WarningType
    fraud_type: FraudType
    risk_level: int
    status: LeadStatus
    tier: Tier | None
    deadlines: dict[str, Any] | None
    subject: SubjectPublic
    beat_code: str | None
    street_code: str | None
    district_code: str | None = Field(None, description="The district that owns it (null: the city center)")
    in_jurisdiction: bool | None
    flags: list[str]
    outcome: str | None
    assigned_team: str | None
    signed_at: datetime | None = Field(None, description="When the center signed for it (签收); null until then")
    processing_failed: bool = Field(description="The worker failed on it `max_processing_attempts` times; "
                                                "it is no longer retried (see last_error)")
    person_id: int | None = Field(None, description="The person (一人一档) the lead is linked to by phone and ID "
                                  "number when a worker triaged it (GET /api/v1/people/{id}); null before, or with "
                                  "neither a phone nor a valid ID number")
    merged_into: int | None = Field(None, description="The lead whose piece of work this warning joined (the person's "
                                    "work was open: policy [merge]); it is then closed `duplicate` with no ladder of "
                                    "its own. Null: it is its own work")


class LeadPage(BaseModel):
    items: list[LeadSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last")


class LocationPublic(BaseModel):
    """As pushed: coordinates in their own CRS, or (kind `address`) an address and no coordinates."""
    lon: float | None
    lat: float | None
    crs: str | None
    accuracy_m: float | None
    kind: str | None
    address: str | None = None


class PlacementPublic(BaseModel):
    lon: float | None = Field(description="WGS-84")
    lat: float | None
    beat_code: str | None
    street_code: str | None
    district_code: str | None = Field(None, description="The district of the city that owns the lead now "
                                                        "(null: the city center)")
    in_jurisdiction: bool | None
    placed_by: str


class TransferPublic(BaseModel):
    to: str | None
    reason: str


class EventPublic(BaseModel):
    at: datetime
    actor: str
    kind: str
    data: dict[str, Any]


class PersonCounts(BaseModel):
    """What the lead and the queue show of the person."""
    warned_30d: int = Field(description="The person's warnings pushed in the last 30 days (a lead that joined "
                                        "another's work is not a second warning)")
    visits: int = Field(description="Visits a squad made to the person (arrived or done), on any lead, ever")


class LeadDetail(LeadSummary):
    """One lead in full; every such read writes an access_log row."""
    tier: dict[str, Any] | None = Field(  # type: ignore[assignment]
        description='{"tier": "P0".."P3", "response": [...], "reasons": [...], "deadlines": {...}}')
    fraud_type_raw: str | None
    ongoing: bool
    counterpart: dict[str, Any]
    amount_cny: float | None
    location: LocationPublic | None
    placement: PlacementPublic | None
    transfer: TransferPublic | None
    signed_at: datetime | None
    signed_by: str | None
    closed_at: datetime | None
    attempts: int = Field(description="Times a worker tried to place and tier it")
    last_error: str | None = Field(description="The last processing error, if any")
    person: PersonCounts | None = Field(description='The person now: "warned N times in 30 days, M visits" '
                                        "(null when the lead is linked to no one)")
    timeline: list[EventPublic]


class RejectionPublic(BaseModel):
    id: int
    at: datetime
    actor: str
    source: str | None
    source_id: str | None
    errors: list[FieldErrorOut]


class RejectionPage(BaseModel):
    total: int
    by_field: dict[str, int] = Field(description="How many rejections name each field")
    items: list[RejectionPublic]
