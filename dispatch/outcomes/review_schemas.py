"""Wire models of reviews (倒查) and feedback to the sources (反馈). Public schemas, apart from the tables."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from dispatch.outcomes.schemas import LeadRef, VictimPublic


class ReviewCase(BaseModel):
    case_id: str
    reported_at: str
    victim: VictimPublic = Field(description="masked")
    fraud_type: str
    loss_cny: float | None
    beat_code: str | None


class ReviewLine(BaseModel):
    case_id: str
    reported_at: str
    generated_at: str = Field(description="when the case was first matched to a warning (the review's birth)")
    fraud_type: str
    loss_cny: float | None
    beat_code: str | None
    victim: VictimPublic = Field(description="masked")
    lead: LeadRef | None = Field(description="the warning the case was matched to")
    street_code: str | None
    tier: str | None
    deadlines_missed: int = Field(description="deadlines of the matched lead missed or met late")


class ReviewList(BaseModel):
    from_: str = Field(alias="from")
    to: str
    items: list[ReviewLine]


class DeadlineVerdict(BaseModel):
    lead_id: int
    name: str
    due_at: str
    state: str
    met_at: str | None
    acted_at: str | None
    verdict: str = Field(description="met | late | missed | cancelled | pending")


class Review(BaseModel):
    """倒查: every action on every lead of the victim, the deadlines met or missed, who was told."""
    case: ReviewCase
    generated_at: str
    matched_at: str
    lead_id: int | None
    person_id: int | None
    leads: list[dict[str, Any]] = Field(description="the person's leads (phones, ID numbers masked)")
    actions: list[dict[str, Any]] = Field(description="every timeline event: at, lead_id, actor, kind, data")
    calls: list[dict[str, Any]]
    sms: list[dict[str, Any]] = Field(description="every SMS of these leads (warning, family, offer), masked")
    visits: list[dict[str, Any]]
    squads: list[dict[str, Any]] = Field(description="the squads offered each visit, and what they did")
    callbacks: list[dict[str, Any]]
    family: list[dict[str, Any]] = Field(description="保护圈 contacts (masked)")
    stop_payment: list[dict[str, Any]]
    deadlines: list[DeadlineVerdict]
    told: list[dict[str, Any]] = Field(description="who was told: SMS recipients, family contacts, squads offered")
    totals: dict[str, int]


class FeedbackSourcePublic(BaseModel):
    source: str
    url: str
    created_at: str
    updated_at: str
    pending: int
    delivered: int
    dead: int
    last_delivered_at: str | None


class FeedbackSources(BaseModel):
    items: list[FeedbackSourcePublic]


class FeedbackDeliveryPublic(BaseModel):
    id: int = Field(description="also the receiver's idempotency key (`delivery_id`, X-Quanzu-Delivery)")
    source: str
    lead_id: int
    event: str = Field(description="signed | reached | visited | closed | case_filed")
    status: str = Field(description="pending | delivered | dead")
    attempts: int
    last_error: str | None
    created_at: str
    next_attempt_at: str
    delivered_at: str | None


class FeedbackDead(BaseModel):
    items: list[FeedbackDeliveryPublic]
