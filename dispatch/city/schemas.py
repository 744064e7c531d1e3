"""Wire models of the city's routes (contract.md: transfers between districts are handovers)."""
from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.core.params import Text


class TransferPublic(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: int
    lead_id: int
    from_: str | None = Field(alias="from", description="The sending district (null: the city center)")
    to: str = Field(description="The receiving district")
    reason: str
    state: str = Field(description="review (waits for the sending district's commander) | pending (waits for "
                                   "the receiver) | accepted | refused | expired (back to the city center) | "
                                   "cancelled")
    requested_by: str
    requested_at: datetime
    reviewed_by: str | None
    reviewed_at: datetime | None
    due_at: datetime | None = Field(description="The receiver accepts by then (transfer.accept_within)")
    answered_by: str | None
    answered_at: datetime | None
    answer_reason: str | None


class TransferList(BaseModel):
    items: list[TransferPublic]


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "同意移交"}]})
    note: Text(500) | None = None
