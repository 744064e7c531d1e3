"""The KPIs recomputed from the raw rows by the documented formula (README "KPIs", dispatch/outcomes/kpi.py),
in Python over plain `SELECT *`s — no SQL aggregate of ours — for a slice of the shared district's feed
and for a feed of our own generator, after the workers linked people and merged warnings.

The formula, per group (and for all), over the leads received in the range:
- works = the leads with `merged_into` null; `leads` = |works|; `merged` = the other leads of the group.
- `people` = distinct person of the works (`person_id`; unlinked: phone, else ID number, else the lead).
- `signed` = works with `signed_at`; `signed_in_time` = those signed by the `sign` deadline row's due time,
  else the tier's `tier_detail.deadlines.sign`.
- `calls` = works with a call; `connected` = works with a connected call; `call_attempts` = their calls;
  `sms_sent` = their warning SMS sent or delivered.
- `visits_required` = works with a visit; `visits_done` = works with a visit done and met in person;
  the same for fund-transfer warnings.
- `closed_counted` = works closed with an outcome other than duplicate and false alarm; `dissuaded`.
- `callbacks_due` = works' callbacks of attempt 1 made or due by now; `callbacks_done` = works' attempts
  answered safe or defrauded.
- `post_warning_cases` = cases matched to a work or to a lead merged into it; `post_warning_people` =
  distinct persons of the works with such a case.
- rates: kpi.RATES (`post_warning_rate` = post_warning_people / people), null on an empty denominator."""
from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from dispatch.outcomes import kpi
from tests.data import shared_file
from tests.factories import INSIDE

pytestmark = pytest.mark.usefixtures("district", "clean")
RANGE = {"from": "2026-09-01T00:00:00+08:00", "to": "2027-03-01T00:00:00+08:00"}
GROUPS = {"street": "street_code", "source": "source", "tier": "tier"}


def _worked(conn, seed: int) -> None:
    """What the ladder would have written, made up as raw rows: calls, SMS, visits, closes, and callbacks
    with retries (attempts not reached, then maybe reached), over the workers' own rows."""
    rng = random.Random(seed)
    conn.execute(text("TRUNCATE call_attempt, sms_message, callback, offer_delivery, assignment, visit, "
                      "lead_deadline CASCADE"))
    now = datetime.now().astimezone()
    for lead_id, received, status in conn.execute(text("SELECT id, received_at, status FROM lead "
                                                       "WHERE merged_into IS NULL ORDER BY id")).all():
        if rng.random() < 0.7:
            conn.execute(text("UPDATE lead SET signed_at = :t WHERE id = :id"),
                         {"t": received + timedelta(seconds=rng.randint(10, 4000)), "id": lead_id})
        for k in range(rng.choice((0, 1, 2, 3))):
            conn.execute(text("INSERT INTO call_attempt (lead_id, at, actor, result) VALUES (:id, :t, 'op', :r)"),
                         {"id": lead_id, "t": received + timedelta(minutes=k + 1),
                          "r": rng.choice(["connected", "connected", "no_answer", "busy"])})
        if rng.random() < 0.5:
            conn.execute(text("INSERT INTO sms_message (lead_id, purpose, to_phone, body, idempotency_key, status, attempts) "
                              "VALUES (:id, 'warning', '13900000000', 'x', :k, :s, 1)"),
                         {"id": lead_id, "k": f"r{lead_id}", "s": rng.choice(["sent", "delivered", "failed"])})
        if rng.random() < 0.3:
            conn.execute(text("INSERT INTO visit (lead_id, reason, requested_by, status, met_in_person) "
                              "VALUES (:id, 'policy', 'worker', :s, :m)"),
                         {"id": lead_id, "s": rng.choice(["done", "done", "waiting"]), "m": rng.random() < 0.8})
        if status == "tiered" and rng.random() < 0.5:
            conn.execute(text("UPDATE lead SET status = 'closed', outcome = :o, closed_at = :t WHERE id = :id"),
                         {"o": rng.choice(["dissuaded", "dissuaded", "refused", "false_alarm", "not_reached"]),
                          "t": received + timedelta(hours=2), "id": lead_id})
            due = now + timedelta(days=rng.choice((-4, -2, 3)))
            for attempt in range(1, rng.choice((1, 2, 3)) + 1):
                made = due <= now and rng.random() < 0.8
                result = rng.choice(["not_reached", "safe", "defrauded"]) if made else None
                conn.execute(text("INSERT INTO callback (lead_id, due_at, done_at, result, attempt) "
                                  "VALUES (:id, :d, :x, :r, :a)"),
                             {"id": lead_id, "d": due, "x": due if made else None, "r": result, "a": attempt})
                if result != "not_reached":
                    break
                due += timedelta(days=1)


def _recount(conn, key: str) -> dict:
    """The documented formula over raw rows (see the module docstring)."""
    lo, hi = (datetime.fromisoformat(RANGE[k]) for k in ("from", "to"))
    leads = [r for r in conn.execute(text("SELECT * FROM lead")).all() if lo <= r.received_at < hi]
    by_lead = defaultdict(lambda: defaultdict(list))
    for table, col in (("call_attempt", "lead_id"), ("sms_message", "lead_id"), ("visit", "lead_id"),
                       ("callback", "lead_id"), ("lead_deadline", "lead_id")):
        for r in conn.execute(text(f"SELECT * FROM {table}")).all():
            by_lead[getattr(r, col)][table].append(r)
    work_of = {r.id: r.merged_into or r.id for r in conn.execute(text("SELECT id, merged_into FROM lead")).all()}
    cases = defaultdict(int)
    for c in conn.execute(text("SELECT * FROM case_report WHERE post_warning_lead_id IS NOT NULL")).all():
        cases[work_of[c.post_warning_lead_id]] += 1
    now = datetime.now().astimezone()
    groups: dict = defaultdict(list)
    for r in leads:
        groups[getattr(r, key)].append(r)
        groups["__total__"].append(r)
    out = {}
    for g, rs in groups.items():
        works = [r for r in rs if r.merged_into is None]

        def person(r):
            return (f"p{r.person_id}" if r.person_id is not None else r.phone
                    or (f"id:{r.id_number.upper()}" if r.id_number else f"lead:{r.id}"))

        def kids(r, t):
            return by_lead[r.id][t]

        def in_time(r):
            sign = [d.due_at for d in kids(r, "lead_deadline") if d.name == "sign"]
            due = sign[0] if sign else ((r.tier_detail or {}).get("deadlines") or {}).get("sign")
            due = datetime.fromisoformat(due) if isinstance(due, str) else due
            return r.signed_at is not None and due is not None and r.signed_at <= due

        def visit_done(r):
            return any(v.status == "done" and v.met_in_person for v in kids(r, "visit"))

        fund = [r for r in works if r.warning_type == "fund_transfer"]
        out[g] = {
            "leads": len(works), "merged": len(rs) - len(works), "people": len({person(r) for r in works}),
            "signed": sum(r.signed_at is not None for r in works), "signed_in_time": sum(map(in_time, works)),
            "calls": sum(bool(kids(r, "call_attempt")) for r in works),
            "connected": sum(any(c.result == "connected" for c in kids(r, "call_attempt")) for r in works),
            "call_attempts": sum(len(kids(r, "call_attempt")) for r in works),
            "sms_sent": sum(s.purpose == "warning" and s.status in ("sent", "delivered")
                            for r in works for s in kids(r, "sms_message")),
            "visits_required": sum(bool(kids(r, "visit")) for r in works),
            "visits_done": sum(map(visit_done, works)),
            "fund_visits_required": sum(bool(kids(r, "visit")) for r in fund),
            "fund_visits_done": sum(map(visit_done, fund)),
            "closed_counted": sum(r.status == "closed" and r.outcome not in ("duplicate", "false_alarm") for r in works),
            "dissuaded": sum(r.status == "closed" and r.outcome == "dissuaded" for r in works),
            "callbacks_due": sum(c.attempt == 1 and (c.done_at is not None or c.due_at <= now)
                                 for r in works for c in kids(r, "callback")),
            "callbacks_done": sum(c.result in ("safe", "defrauded") for r in works for c in kids(r, "callback")),
            "post_warning_cases": sum(cases[r.id] for r in works),
            "post_warning_people": len({person(r) for r in works if cases[r.id]}),
        }
    return out


async def _compare(client, commander, sync_engine) -> dict:
    with sync_engine.connect() as conn:
        for group, column in GROUPS.items():
            want = _recount(conn, column)
            body = (await client.get("/api/v1/stats", params={"group_by": group, **RANGE}, headers=commander)).json()
            got = {**{r["key"]: r for r in body["rows"]}, "__total__": body["total"]}
            assert set(got) == set(want), group
            for key, counts in want.items():
                for name, value in counts.items():
                    assert got[key][name] == value, f"{group}={key}: {name}"
                for name, (num, den) in kpi.RATES.items():
                    if num in counts and den in counts:
                        expected = None if not counts[den] else pytest.approx(counts[num] / counts[den])
                        assert got[key][name] == expected, f"{group}={key}: {name}"
    return want["__total__"]


async def _push(client, headers, leads: list[dict], cases: list[dict], run_worker) -> None:
    for i in range(0, len(leads), 1000):
        r = await client.post("/api/v1/leads/batch", json={"leads": leads[i:i + 1000]}, headers=headers)
        assert r.status_code == 200
    await run_worker()
    r = await client.post("/api/v1/cases/batch", json={"cases": cases}, headers=headers)
    assert r.status_code == 200 and all(x["status"] == "accepted" for x in r.json()["results"])


async def test_kpis_recounted_for_the_shared_district(client, source_headers, commander, run_worker, sync_engine):
    """Its first week of leads, and the cases reported in its first three weeks (load only what is needed)."""
    with shared_file("leads.jsonl").open(encoding="utf-8") as f:
        leads = [lead for lead in map(json.loads, f) if str(lead.get("pushed_at", "")) < "2026-10-08"]
    with shared_file("cases.jsonl").open(encoding="utf-8") as f:
        cases = [c for c in map(json.loads, f) if c["reported_at"] < "2026-10-22"]
    await _push(client, source_headers, leads, cases, run_worker)
    with sync_engine.begin() as conn:
        _worked(conn, seed=22)
    total = await _compare(client, commander, sync_engine)
    assert total["leads"] > 800 and total["post_warning_cases"] > 5
    assert total["callbacks_due"] > total["callbacks_done"] > 0


async def test_kpis_recounted_for_a_generated_feed(client, source_headers, commander, run_worker, sync_engine):
    """Our generator's feed for the district the run stands on; a third of the repeat warnings carry only
    the phone or only the ID number, so people are linked through a third lead."""
    from service.core.db import sync_session
    from service.tools.simulate import Area, Generator

    with sync_session(sync_engine) as session:
        gen = Generator(Area.load(session), seed=5, per_day=120)
    rng = random.Random(5)
    leads, cases, seen = [], [], set()
    for n, sim in enumerate(gen.leads(700)):
        if sim.kind != "ok":
            continue
        wire = sim.wire
        if sim.person.phone in seen and sim.person.id_number and rng.random() < 0.35:
            wire["subject"]["phone" if rng.random() < 0.5 else "id_number"] = None
        seen.add(sim.person.phone)
        if wire["subject"]["phone"] is None and wire["location"] is None:
            wire["location"] = {"lon": INSIDE["lon"], "lat": INSIDE["lat"], "crs": "wgs84", "kind": "gps"}
        leads.append(wire)
        if n % 40 == 0:  # the same warning from a second source an hour later: it joins the work
            leads.append({**wire, "source": "bank_fund_monitor" if wire["source"] != "bank_fund_monitor" else
                          "national_platform", "source_id": f"{wire['source_id']}-2",
                          "pushed_at": (sim.at + timedelta(hours=1)).isoformat()})
        case = gen.case_for(sim)
        if case is not None:
            cases.append(case)
            if len(cases) % 3 == 1:  # defrauded twice: two cases, one person
                cases.append({**case, "case_id": case["case_id"] + "-2"})
        elif rng.random() < 0.02:
            cases.append(gen.unwarned_case(sim.at))
    await _push(client, source_headers, leads, cases, run_worker)
    with sync_engine.begin() as conn:
        _worked(conn, seed=5)
    total = await _compare(client, commander, sync_engine)
    assert total["leads"] > 500 and total["merged"] >= 10 and total["people"] < total["leads"]
    assert total["post_warning_cases"] > total["post_warning_people"] > 0  # per case and per person differ
