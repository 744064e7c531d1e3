"""The simulator in bulk: generated leads placed, tiered and worked, written straight into PostgreSQL
with COPY (the benchmark), with their calls, SMS, visits, callbacks, deadlines and cases."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import orjson

from dispatch.enums import FraudType
from dispatch.outcomes.cases import MATCH_UNMATCHED, REVIEW_MATCHED
from dispatch.policy import LeadFacts, Policy, load_policy
from dispatch.triage.tiering import age_on, tier_lead
from service.core.clock import CENTER_TZ
from service.tools.simulate import CLOSE_OUTCOMES, Area, Generator, pick

LEAD_COPY = ("id", "source", "source_id", "pushed_at", "received_at", "warning_type", "fraud_type", "fraud_type_raw",
             "risk_level",
             "ongoing", "phone", "name", "id_number", "residency", "counterpart", "amount_cny", "loc_lon", "loc_lat",
             "loc_crs", "loc_accuracy_m", "loc_kind", "lon", "lat", "beat_code", "street_code", "in_jurisdiction",
             "placed_by", "flags", "status", "tier", "tier_detail", "assigned_team", "signed_at", "signed_by",
             "outcome", "closed_at", "loss_cny", "saved_cny", "attempts", "updated_at")


@dataclass
class BulkReport:
    leads: int = 0
    rows: Counter = field(default_factory=Counter)
    seconds: float = 0.0


def bulk_load(conn, area: Area, n: int, *, seed: int = 7, start: datetime | None = None,
              per_day: float | None = None, policy: Policy | None = None, progress=None) -> BulkReport:
    """Write `n` placed, tiered and worked leads (and their calls, SMS, visits, assignments,
    callbacks, sign deadlines and cases) with COPY on a psycopg connection; the caller commits.
    Only accepted, distinct leads are written: a bulk load has no pushes to refuse."""
    t0 = time.perf_counter()
    policy = policy or load_policy()
    days = 30.0
    gen = Generator(area, seed, start, per_day or n / days)
    rng = gen.rng
    first = (conn.execute("SELECT coalesce(max(id), 0) FROM lead").fetchone()[0]) + 1
    rep = BulkReport()
    jdump = orjson.dumps
    buffers: dict[str, list[tuple]] = {t: [] for t in ("call_attempt", "sms_message", "visit", "assignment",
                                                       "callback", "lead_deadline", "case_report")}
    columns = {
        "call_attempt": ("lead_id", "at", "actor", "result", "outcome"),
        "sms_message": ("lead_id", "purpose", "to_phone", "body", "idempotency_key", "status", "attempts",
                        "created_at", "sent_at"),
        "visit": ("id", "lead_id", "reason", "requested_by", "requested_at", "status", "team_code", "done_at",
                  "met_in_person", "outcome"),
        "assignment": ("visit_id", "lead_id", "team_code", "attempt", "status", "offered_at", "expires_at",
                       "accepted_at", "arrived_at", "completed_at", "met_in_person", "outcome"),
        "callback": ("lead_id", "due_at", "done_at", "actor", "result"),
        "lead_deadline": ("lead_id", "name", "due_at", "state", "met_at"),
        "case_report": ("case_id", "reported_at", "victim_phone", "victim_id_number", "fraud_type", "loss_cny",
                        "beat_code", "post_warning_lead_id"),
    }
    visit_id = (conn.execute("SELECT coalesce(max(id), 0) FROM visit").fetchone()[0]) + 1

    def flush_children() -> None:
        for table, rows in buffers.items():
            if rows:
                with conn.cursor().copy(f"COPY {table} ({', '.join(columns[table])}) FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
                rep.rows[table] += len(rows)
                rows.clear()

    lead_id = first
    batch: list[tuple] = []

    def flush_leads() -> None:
        with conn.cursor().copy(f"COPY lead ({', '.join(LEAD_COPY)}) FROM STDIN") as cp:
            for row in batch:
                cp.write_row(row)
        batch.clear()
        flush_children()

    seen: set[tuple[str, str]] = set()
    for sim in gen.leads(n * 2):
        if rep.leads >= n:
            break
        w = sim.wire
        if sim.kind != "ok" or (w["source"], w["source_id"]) in seen:
            continue
        seen.add((w["source"], w["source_id"]))
        s, loc = w["subject"], w["location"]
        received = sim.at + timedelta(seconds=rng.uniform(0.05, 2))
        beat = area.beats[sim.beat] if sim.beat is not None else None
        inside = beat is not None
        fraud = w["fraud_type"] if w["fraud_type"] in FraudType.__members__ else "other"
        facts = LeadFacts(w["warning_type"], fraud, w["risk_level"], s["residency"], inside,
                          age_on(s["id_number"], received.date()), w["ongoing"])
        decision = tier_lead(facts, policy, received.astimezone(CENTER_TZ))
        response = [x.value for x in decision.response]
        status, outcome, closed = ("tiered" if inside else "transferred"), None, None
        signed = received + timedelta(seconds=rng.lognormvariate(4, 1)) if inside and rng.random() < 0.95 else None
        team = beat[3] if beat else None
        lid = lead_id
        if inside:
            buffers["lead_deadline"].append((lid, "sign", decision.deadlines.get("sign", received + timedelta(
                minutes=10)), "met" if signed else "pending", signed))
            for t, result in gen.calls(sim, response):
                buffers["call_attempt"].append((lid, received + timedelta(seconds=t), "sim", result,
                                                "dissuaded" if result == "connected" else None))
            if "sms" in response:
                buffers["sms_message"].append((lid, "warning", s["phone"], "warning", f"sim-{lid}", "delivered", 1,
                                               received, received + timedelta(seconds=5)))
            if "visit" in response and team:
                arrived = received + timedelta(seconds=rng.lognormvariate(7, 0.6))
                met = rng.random() < 0.92
                buffers["visit"].append((visit_id, lid, "policy", "sim", received, "done", team,
                                         arrived + timedelta(minutes=20), met, "dissuaded" if met else "not_reached"))
                buffers["assignment"].append((visit_id, lid, team, 1, "completed", received,
                                              received + timedelta(seconds=60), received + timedelta(seconds=20),
                                              arrived, arrived + timedelta(minutes=20), met, None))
                visit_id += 1
            if rng.random() < 0.85:
                status, outcome = "closed", pick(rng, CLOSE_OUTCOMES)
                closed = received + timedelta(hours=rng.uniform(0.5, 30))
                if rng.random() < 0.8:
                    due = closed + timedelta(days=3)
                    done = due + timedelta(hours=rng.uniform(0, 20)) if rng.random() < 0.85 else None
                    buffers["callback"].append((lid, due, done, "sim" if done else None, "safe" if done else None))
            case = gen.case_for(sim)
            if case:
                v = case["victim"]
                buffers["case_report"].append((case["case_id"], case["reported_at"], v["phone"], v["id_number"],
                                               case["fraud_type"], Decimal(str(case["loss_cny"])), case["beat_code"],
                                               None))
        batch.append((
            lid, w["source"], w["source_id"], sim.at, received, w["warning_type"], fraud,
            w["fraud_type"] if fraud != w["fraud_type"] else None, w["risk_level"], w["ongoing"], s["phone"],
            s["name"], s["id_number"], s["residency"], jdump(w["counterpart"]).decode(),
            None if w["amount_cny"] is None else Decimal(str(w["amount_cny"])),
            loc["lon"] if loc else None, loc["lat"] if loc else None, loc["crs"] if loc else None,
            loc["accuracy_m"] if loc else None, loc["kind"] if loc else None,
            sim.lon, sim.lat, beat[0] if beat else None, beat[1] if beat else None, inside,
            "location" if loc else "none", "[]", status, decision.tier.value, jdump(decision.as_json()).decode(),
            team if inside and "visit" in response else None, signed, "sim" if signed else None,
            outcome, closed, None, None, 1, received))
        lead_id += 1
        rep.leads += 1
        if len(batch) >= 20_000:
            flush_leads()
            if progress:
                progress(rep.leads)
    if batch:
        flush_leads()
    conn.execute("SELECT setval(pg_get_serial_sequence('lead', 'id'), (SELECT max(id) FROM lead))")
    # the cases are matched as the API matches them (dispatch.outcomes.cases), not assumed
    conn.execute(MATCH_UNMATCHED)
    conn.execute(REVIEW_MATCHED)  # each match has its review (倒查)
    conn.execute("SELECT setval(pg_get_serial_sequence('visit', 'id'), greatest((SELECT max(id) FROM visit), 1))")
    rep.rows["lead"] = rep.leads
    rep.seconds = time.perf_counter() - t0
    return rep
