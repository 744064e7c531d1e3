"""Wire models of policy replay: a candidate policy run over stored leads."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from service.core.params import Text, Time


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"policy": "version = 1\n# … a whole policy.toml …", "since": "2026-10-01T00:00:00+08:00"}]})
    policy: Text(200_000, 1) = Field(description="A whole policy file (TOML), as dispatch/policy.toml")
    since: Time | None = None
    until: Time | None = None


class Counted(BaseModel):
    current: int
    candidate: int
    delta: int
    per_day: float


class ReplayPublic(BaseModel):
    policy_version: str
    leads: int
    days: int
    tier_changed: int
    response_changed: int
    from_to: dict[str, int] = Field(examples=[{"P2→P1": 12}])
    visits: Counted
    calls: Counted
    stored_policy_versions: dict[str, int]
    sample_lead_ids: list[int]
