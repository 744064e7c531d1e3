"""Shared steps of the ladder tests: leads of each tier, pushed and tiered by a real worker."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from dispatch.models import Lead, LeadDeadline, LeadEvent
from tests.factories import make_lead

# Facts that give each tier (domain.md's default policy); nonlocal people get no district visit.
TIERS = {
    "P0": dict(warning_type="fund_transfer", risk_level=1),
    "P1": dict(risk_level=1, subject={"residency": "nonlocal"}),
    "P1_resident": dict(risk_level=1),
    "P2": dict(risk_level=2, fraud_type="online_shopping", subject={"residency": "nonlocal"}),
    "P2_resident": dict(risk_level=2, fraud_type="online_shopping"),
    "P3": dict(risk_level=3, fraud_type="online_shopping", subject={"residency": "nonlocal"}),
}


def lead_of(kind: str, **kw) -> dict:
    spec = {**TIERS[kind]}
    subject = {**spec.pop("subject", {}), **kw.pop("subject", {})}
    return make_lead(subject=subject, **{**spec, **kw})


async def push(client, headers, lead: dict) -> int:
    r = await client.post("/api/v1/leads", json=lead, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["id"]


async def tiered(client, headers, run_worker, kind: str, **kw) -> int:
    lead_id = await push(client, headers, lead_of(kind, **kw))
    await run_worker()
    return lead_id


def deadlines(sync_engine, lead_id: int) -> dict[str, LeadDeadline]:
    with sync_engine.connect() as conn:
        return {d.name: d for d in conn.execute(select(LeadDeadline).where(LeadDeadline.lead_id == lead_id))}


def events(sync_engine, lead_id: int, kind: str | None = None) -> list:
    q = select(LeadEvent).where(LeadEvent.lead_id == lead_id).order_by(LeadEvent.id)
    if kind:
        q = q.where(LeadEvent.kind == kind)
    with sync_engine.connect() as conn:
        return list(conn.execute(q))


def lead_row(sync_engine, lead_id: int):
    with sync_engine.connect() as conn:
        return conn.execute(select(Lead).where(Lead.id == lead_id)).one()


def received_at(sync_engine, lead_id: int) -> datetime:
    return lead_row(sync_engine, lead_id).received_at
