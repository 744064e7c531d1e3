"""Wire models for pushed leads (contract.md "Leads"). They document the API and hold
the normalised result of `dispatch.validation.validate_lead`, which owns the rules."""
from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dispatch.enums import FraudType, LocationKind, Residency, Source, WarningType

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
