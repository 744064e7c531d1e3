"""Policy replay over the shared district's leads (data we did not write): the current policy
changes nothing; with the district rule switched off the visits saved match a recount."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from sqlalchemy import select

from dispatch.models import Lead
from service.core.clock import CENTER_TZ
from tests.data import ROOT, shared_file

pytestmark = pytest.mark.usefixtures("district")

PACKAGED = (ROOT / "dispatch/policy.toml").read_text("utf-8")
RULE_OFF = PACKAGED.replace("district_face_to_face = true", "district_face_to_face = false", 1)


@pytest.fixture(scope="module")
async def shared_leads(app, client, source_headers, sync_engine, redis_url):
    """Every other lead of the shared feed pushed and tiered (by the workers' task) once for this module;
    the SMS jobs tiering queued are dropped: replay needs only the tiers."""
    from redis import Redis
    from sqlalchemy import text

    from workers.tasks import process_leads

    with sync_engine.begin() as conn:
        conn.execute(text("TRUNCATE lead, lead_event, rejection, access_log RESTART IDENTITY CASCADE"))
    with shared_file("leads.jsonl").open(encoding="utf-8") as f:  # half of them: the whole feed is worked
        leads = [json.loads(line) for i, line in enumerate(f) if i % 2 == 0]  # by test_shared_district
    ids = []
    for i in range(0, len(leads), 1000):
        r = await client.post("/api/v1/leads/batch", json={"leads": leads[i:i + 1000]}, headers=source_headers)
        assert r.status_code == 200
        ids += [x["id"] for x in r.json()["results"] if x["status"] == "accepted"]
    await app.state.after_commit.drain()
    for i in range(0, len(ids), 500):
        process_leads(ids[i:i + 500])
    Redis.from_url(redis_url).flushdb()
    with sync_engine.connect() as conn:
        rows = conn.execute(select(Lead.id, Lead.tier, Lead.in_jurisdiction, Lead.tier_detail, Lead.received_at,
                                   Lead.merged_into).where(Lead.status != "received")).all()
    assert len(rows) > 2000
    return rows


async def replay(client, headers, policy: str, **window) -> dict:
    r = await client.post("/api/v1/policy/replay", headers=headers, json={"policy": policy, **window})
    assert r.status_code == 200, r.text
    return r.json()


async def test_replaying_the_current_policy_changes_nothing(shared_leads, client, commander):
    from dispatch.policy import load_policy

    out = await replay(client, commander, PACKAGED)
    assert out["leads"] == len(shared_leads)
    assert (out["tier_changed"], out["response_changed"], out["from_to"], out["sample_lead_ids"]) == (0, 0, {}, [])
    assert out["visits"]["delta"] == out["calls"]["delta"] == 0
    assert out["policy_version"] == load_policy().version
    assert out["stored_policy_versions"] == {load_policy().version: len(shared_leads)}


async def test_switching_the_district_rule_off_reports_the_visits_saved(shared_leads, client, commander,
                                                                       sync_engine):
    out = await replay(client, commander, RULE_OFF)
    # the recount: leads in the district, each its own work (not joined to another's), whose visit came
    # from the district rule alone
    worked = [r for r in shared_leads if r.in_jurisdiction is not False and r.merged_into is None]
    saved = [r.id for r in worked if "district_face_to_face" in r.tier_detail["reasons"]]
    # (as the policy decided: a work raised by a more urgent warning keeps that under `policy`)
    visits_now = sum(1 for r in worked if "visit" in (r.tier_detail.get("policy") or r.tier_detail)["response"])
    assert len(saved) > 100, len(saved)
    assert out["tier_changed"] == 0 and out["from_to"] == {}
    assert out["visits"] == {"current": visits_now, "candidate": visits_now - len(saved), "delta": -len(saved),
                             "per_day": round(-len(saved) / out["days"], 2)}
    assert out["calls"]["delta"] == 0
    joined = [r.id for r in shared_leads if r.merged_into is not None and r.in_jurisdiction is not False
              and "district_face_to_face" in r.tier_detail["reasons"]]  # their response changes too, unworked
    assert out["response_changed"] == len(saved) + len(joined)
    assert set(out["sample_lead_ids"]) <= set(saved) | set(joined)
    days = {r.received_at.astimezone(CENTER_TZ).date()
            for r in shared_leads}
    assert out["days"] == len(days)
    with sync_engine.connect() as conn:  # nothing written
        assert conn.execute(select(Lead.tier_detail).where(Lead.id == saved[0])).scalar_one() == \
               next(r.tier_detail for r in shared_leads if r.id == saved[0])


async def test_cli_replay_and_check_agree(shared_leads, tmp_path, settings):
    candidate = tmp_path / "rule_off.toml"
    candidate.write_text(RULE_OFF, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "service.cli", "policy", "replay", "--policy", str(candidate)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["leads"] == len(shared_leads) and out["visits"]["delta"] < 0
    ok = subprocess.run([sys.executable, "-m", "service.cli", "policy", "check", str(candidate)],
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0 and "valid" in ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text(PACKAGED.replace('sign = "2m"', 'sign = "soon"', 1), encoding="utf-8")
    failed = subprocess.run([sys.executable, "-m", "service.cli", "policy", "check", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert failed.returncode != 0 and "tiers.P0.deadlines.sign" in failed.stderr


async def test_bad_candidate_policies_are_422_naming_the_key(client, commander):
    for text, key in ((PACKAGED.replace("failed_calls_to_visit = 3", "failed_calls_to_visit = 0"),
                       "escalation.failed_calls_to_visit"),
                      (PACKAGED.replace('refused_by_phone = "visit"', 'refused_by_phone = "shout"'),
                       "ladder.refused_by_phone"),
                      ("version = 1\n[tiers", "TOML"), ("", "tiers")):
        r = await client.post("/api/v1/policy/replay", headers=commander, json={"policy": text or " "})
        assert r.status_code == 422, r.text
        (d,) = r.json()["detail"]
        assert d["field"] == "policy" and key in d["message"], d
    r = await client.post("/api/v1/policy/replay", headers=commander,
                          json={"policy": PACKAGED, "since": "2026-10-02T00:00:00+08:00",
                                "until": "2026-10-01T00:00:00+08:00"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "until"


async def test_a_policy_nested_past_the_parser_is_a_422_not_a_500(client, commander):
    deep = "a = " + "[" * 3000 + "]" * 3000
    r = await client.post("/api/v1/policy/replay", headers=commander, json={"policy": deep})
    assert r.status_code == 422, r.text
    (d,) = r.json()["detail"]
    assert d["field"] == "policy" and "nested too deeply" in d["message"]
