"""The tiering condition "warned N times in 30 days" (warned_30d) and the query that counts it."""
from __future__ import annotations

import tomllib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from dispatch.enums import Tier
from dispatch.models import Lead
from dispatch.policy import LeadFacts, parse_policy
from dispatch.triage.service import earlier_warnings
from dispatch.triage.tiering import tier_lead
from service.core.db import sync_session
from tests.data import ROOT
from tests.factories import id_number, make_lead

CST = timezone(timedelta(hours=8))


def test_warned_30d_gte_is_a_condition():
    doc = tomllib.loads((ROOT / "dispatch/policy.toml").read_text("utf-8"))
    doc["rules"].insert(0, {"name": "warned_again", "tier": "P1", "when": {"warned_30d_gte": 2}})
    policy = parse_policy(doc)
    base = dict(warning_type="fraud_sms", fraud_type="online_shopping", risk_level=3, residency="nonlocal",
                in_jurisdiction=True, age=35)
    at = datetime(2026, 10, 1, tzinfo=CST)
    assert tier_lead(LeadFacts(**base, warned_30d=2), policy, at).tier == Tier.P1
    assert "warned_again" in tier_lead(LeadFacts(**base, warned_30d=3), policy, at).reasons
    assert tier_lead(LeadFacts(**base, warned_30d=1), policy, at).tier == Tier.P3
    doc["rules"][0]["when"] = {"warned_30d_gte": "two"}
    with pytest.raises(ValueError, match="warned_30d_gte"):
        parse_policy(doc)


@pytest.mark.usefixtures("district", "clean")
async def test_earlier_warnings_count_the_whole_person(client, source_headers, sync_engine, run_worker):
    """The person of the phone and of the ID numbers: 10-28 carries only ID number b, yet the lead of
    10-01 (phone p and ID number a) is theirs too, linked through 10-20 (p and b)."""
    p, a, b = "13712340000", id_number(900_001), id_number(900_002)
    people = [("10-01", p, a), ("10-20", p, b), ("10-28", None, b), ("11-02", p, b), ("11-01", "13712349999", a[:-1] + "9")]
    leads = [make_lead(pushed_at=f"2026-{day}T08:00:00+08:00", subject={"phone": ph, "id_number": idn})
             for day, ph, idn in people]
    r = await client.post("/api/v1/leads/batch", json={"leads": leads}, headers=source_headers)
    assert all(x["status"] == "accepted" for x in r.json()["results"])
    await run_worker()
    with sync_session(sync_engine) as session:
        rows = session.execute(select(Lead).order_by(Lead.pushed_at)).scalars().all()
        counts = {x.pushed_at.astimezone(CST).strftime("%m-%d"): earlier_warnings(session, x) for x in rows}
        persons = {x.pushed_at.astimezone(CST).strftime("%m-%d"): x.person_id for x in rows}
    # (in the 7 days before, in the 30 days before); 10-01 is 32 days before 11-02
    assert counts == {"10-01": (0, 0), "10-20": (0, 1), "10-28": (0, 2), "11-02": (1, 2), "11-01": (0, 0)}
    assert len({persons[d] for d in ("10-01", "10-20", "10-28", "11-02")}) == 1 != len(set(persons.values()))
