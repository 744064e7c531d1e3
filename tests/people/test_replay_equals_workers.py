"""Replay equals the workers: with a policy that acts on the person's 30-day warnings (`warned_30d_gte`),
the workers tier a feed of repeat warnings — phone only, ID number only, both, merged into open work,
triaged out of arrival order — and `POST /policy/replay` and `quanzu policy replay` with the same
policy get the same tier and response for every lead."""
from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from dispatch.models import Lead
from dispatch.policy import parse_policy
from tests.data import ROOT
from tests.factories import id_number, make_lead

pytestmark = pytest.mark.usefixtures("district", "clean")

RULE = '''
[[rules]]
name = "warned_again"            # warned twice before within 30 days: call and visit, whatever the risk
tier = "P1"
when = { warned_30d_gte = 2 }
'''
POLICY = (ROOT / "dispatch/policy.toml").read_text("utf-8") + RULE
START = datetime(2026, 10, 1, 8, tzinfo=timezone(timedelta(hours=8)))


def _feed(rng: random.Random, people: int = 70) -> list[dict]:
    leads = []
    for n in range(people):
        phone, idn = f"1380000{n:04d}", id_number(800_000 + n)
        at = START + timedelta(hours=rng.uniform(0, 24 * 20))
        for _ in range(rng.choice((1, 2, 3, 4, 5, 6))):
            carries = rng.choice(("both", "both", "phone", "id"))
            subject = {"phone": phone if carries != "id" else None, "id_number": idn if carries != "phone" else None,
                       "residency": rng.choice(("resident", "nonlocal"))}
            leads.append(make_lead(pushed_at=at.isoformat(), subject=subject, risk_level=rng.choice((2, 3, 3)),
                                   fraud_type=rng.choice(("online_shopping", "order_brushing", "game_trading")),
                                   warning_type=rng.choice(("fraud_call", "fraud_sms"))))
            at += timedelta(hours=rng.choice((1, 3, 30, 80, 200)))  # some within the merge window
    rng.shuffle(leads)  # arrival order is not pushed order
    return leads


async def test_replay_and_workers_agree_on_a_warned_30d_policy(app, client, source_headers, commander, sync_engine,
                                                               tmp_path, monkeypatch):
    from workers.tasks import ctx, process_leads

    policy = parse_policy(__import__("tomllib").loads(POLICY), "test")
    monkeypatch.setitem(ctx.__dict__, "policy", policy)  # the workers decide with it
    rng = random.Random(22)
    r = await client.post("/api/v1/leads/batch", json={"leads": _feed(rng)}, headers=source_headers)
    ids = [x["id"] for x in r.json()["results"]]
    assert len(ids) > 200 and all(x["status"] == "accepted" for x in r.json()["results"])
    await app.state.after_commit.drain()
    rng.shuffle(ids)  # triaged in yet another order, a few at a time
    while ids:
        k = rng.randint(1, 40)
        process_leads(ids[:k])
        ids = ids[k:]

    with sync_engine.connect() as conn:
        rows = conn.execute(select(Lead.id, Lead.tier_detail, Lead.merged_into, Lead.risk_level, Lead.status)).all()
    assert all(r.status != "received" for r in rows)
    fired = [r for r in rows if "warned_again" in r.tier_detail["reasons"]]
    only = [r for r in fired if r.risk_level == 3 and r.tier_detail["tier"] == "P1"]
    assert len(fired) > 20 and len(only) > 5  # the rule decided tiers here
    assert sum(r.merged_into is not None for r in rows) > 5  # and some warnings joined open work

    r = await client.post("/api/v1/policy/replay", headers=commander, json={"policy": POLICY})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["leads"] == len(rows)
    assert (out["tier_changed"], out["response_changed"], out["from_to"], out["sample_lead_ids"]) == (0, 0, {}, [])
    # without the person's warnings the same rule would not have fired: the replay counted them
    bare = await client.post("/api/v1/policy/replay", headers=commander,
                             json={"policy": POLICY.replace("warned_30d_gte = 2", "warned_30d_gte = 999")})
    assert bare.json()["tier_changed"] >= len(only)

    candidate = tmp_path / "warned.toml"
    candidate.write_text(POLICY, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "service.cli", "policy", "replay", "--policy", str(candidate)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout)
    assert (cli["leads"], cli["tier_changed"], cli["response_changed"]) == (len(rows), 0, 0)
