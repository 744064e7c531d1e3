"""Wire models of the shift's routes (contract.md: the queue, alarms)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class StepDue(BaseModel):
    step: str
    due_at: datetime | None


class Subject(BaseModel):
    name: str | None
    phone: str | None = Field(description="Masked (the queue is a list)")


class PersonCounts(BaseModel):
    warned_30d: int = Field(description="The person's warnings pushed in the last 30 days")
    visits: int = Field(description="Visits a squad made to the person (arrived or done), ever")


class QueueItem(BaseModel):
    id: int
    tier: str | None
    status: str
    step: str = Field(description="The step the lead is on: triage, sign, first_call, call_retry, sms, visit_waiting, "
                                  "visit_offered, on_the_way, on_scene, center, callback, working")
    step_due_at: datetime | None = Field(description="When the current step is due (null: no time set for it)")
    overdue: bool
    steps: list[StepDue] = Field(description="Every open step, the current one first")
    received_at: datetime
    warning_type: str
    fraud_type: str
    risk_level: int
    amount_cny: float | None
    street_code: str | None
    beat_code: str | None
    assigned_team: str | None
    visit_status: str | None
    calls: int
    claimed_by: str | None = Field(description="The operator calling it now (the desk's claim)")
    alarms: int = Field(description="Active alarms on the lead")
    subject: Subject
    person: PersonCounts | None = Field(None, description='The person (一人一档): "warned N times in 30 days, M '
                                        'visits"; null when the lead is linked to no one yet')


class QueuePage(BaseModel):
    items: list[QueueItem]
    next_cursor: str | None
    total: int = Field(description="Open leads matching the filters, all pages")
    by_tier: dict[str, int]
    at: datetime


class AlarmPublic(BaseModel):
    id: int
    lead_id: int
    kind: str = Field(description="The step whose deadline was missed: sign, first_call, connected_call, sms, visit, "
                                  "on_scene, checkin, callback")
    tier: str | None
    level: int = Field(description="1 = the first level of the policy's alarms.levels; climbs when nobody acknowledges")
    level_name: str
    raised_at: datetime
    due_at: datetime | None
    escalate_at: datetime | None = Field(description="When it climbs a level if still unacknowledged (null: top level)")
    team_code: str | None = Field(description="The squad concerned: late to the scene, or missing a check-in")
    assignment_id: int | None
    acked_at: datetime | None
    acked_by: str | None
    resolved_at: datetime | None
    street_code: str | None = None
    beat_code: str | None = None
    data: dict[str, Any]


class AlarmList(BaseModel):
    items: list[AlarmPublic]
    levels: list[str]
