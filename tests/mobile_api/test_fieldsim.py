"""The reference field client works the contract end to end against a real API process."""
from __future__ import annotations

import asyncio

from sqlalchemy import select

from dispatch.models import Assignment, Lead, Team
from service.core.db import sync_session
from service.tools.fieldsim import SimConfig, ensure_member_users, run_sim, squads_from
from tests.mobile_api.test_field import p0_lead
from tests.waiting import until


async def test_field_sim_accepts_travels_arrives_and_completes(api_a, client, source_headers, run_worker,
                                                               field_reset, own_team, sync_engine):
    with sync_session(sync_engine) as s:
        made = ensure_member_users(s, [own_team], "sim-pass")
        s.commit()
        squads = squads_from(s, [own_team], None)
    assert sorted(r for _t, r in made) == sorted(f"{own_team}-{role}".lower()
                                                 for role in ("police", "auxiliary", "grid_worker"))
    cfg = SimConfig(api_a.http, "sim-pass", accept_p=1.0, decline_p=0.0, speed_kmh=100_000, visit_seconds=0.1,
                    location_every_s=60, seed=1)
    sim = asyncio.create_task(run_sim(cfg, squads, duration_s=60))

    def team_status():
        with sync_session(sync_engine) as s:
            return s.get(Team, own_team).status == "on_duty" and s.get(Team, own_team).last_at is not None
    await until(team_status, 30, f"the simulated squad {own_team} on duty, its position reported", every=0.2)
    r = await client.post("/api/v1/leads", json=p0_lead(), headers=source_headers)
    lead_id = r.json()["id"]
    await run_worker()

    def closed():
        with sync_session(sync_engine) as s:
            lead = s.get(Lead, lead_id)
            return lead if lead.status == "closed" else None
    lead = await until(closed, 30, f"lead {lead_id} closed by the simulated squad", every=0.2)
    sim.cancel()
    await asyncio.gather(sim, return_exceptions=True)
    with sync_session(sync_engine) as s:
        (a,) = s.execute(select(Assignment).where(Assignment.lead_id == lead_id)).scalars().all()
    assert a.status == "completed" and a.accepted_by == f"{own_team}-police".lower()
    assert lead.outcome == a.outcome and a.checklist["look"]["fraud_apps"] is True
    assert a.checklist["protect"] == {"payment_stopped": False, "app_uninstalled": False, "family_informed": False}


def test_member_logins_survive_a_district_reimport(field_reset, district, own_team, sync_engine):
    from dispatch.district import import_district
    from dispatch.models import TeamMember

    with sync_session(sync_engine) as s:
        ensure_member_users(s, [own_team], "sim-pass")
        s.commit()
        import_district(s, district)
        s.commit()
        names = sorted(s.execute(select(TeamMember.username).where(TeamMember.team_code == own_team)).scalars())
    assert names == sorted(f"{own_team}-{r}".lower() for r in ("auxiliary", "grid_worker", "police"))
