"""Policy replay: how stored leads would be tiered under a candidate policy, nothing written.

`replay_query` selects the stored facts; `replay` is a pure function over those rows (the same
`tier_lead` the workers run), so the CLI (sync) and the API (async) share it."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Select, select

from dispatch.enums import LeadStatus, Response
from dispatch.models import Lead
from dispatch.policy import LeadFacts, Policy
from dispatch.triage.tiering import age_on, tier_lead
from service.core.clock import CENTER_TZ

SAMPLE = 20


def replay_query(since: datetime | None = None, until: datetime | None = None) -> Select:
    """Every lead a policy has tiered (not those still waiting for a worker), oldest first."""
    q = (select(Lead.id, Lead.pushed_at, Lead.received_at, Lead.warning_type, Lead.fraud_type, Lead.risk_level,
                Lead.residency, Lead.in_jurisdiction, Lead.id_number, Lead.phone, Lead.ongoing, Lead.tier_detail)
         .where(Lead.status != LeadStatus.received, Lead.tier_detail.is_not(None))
         .order_by(Lead.pushed_at, Lead.id))
    if since is not None:
        q = q.where(Lead.received_at >= since)
    if until is not None:
        q = q.where(Lead.received_at < until)
    return q


def _warned_within(rows, days: int) -> set[int]:
    """Ids of leads whose person (phone or ID number) had an earlier lead in the `days` before —
    what the worker asked the database when it tiered them."""
    last: dict[tuple[str, str], datetime] = {}
    out = set()
    window = timedelta(days=days)
    for r in rows:  # ordered by (pushed_at, id)
        keys = [(k, v) for k, v in (("p", r.phone), ("i", r.id_number)) if v]
        if any(k in last and r.pushed_at - last[k] < window for k in keys):
            out.add(r.id)
        for k in keys:
            last[k] = r.pushed_at
    return out


def _as_decided(detail: dict) -> tuple[str, frozenset[str]]:
    """The tier and response the policy gave (a center override or a raise keeps it under `policy`)."""
    base = detail.get("policy") or detail
    return base.get("tier"), frozenset(base.get("response", []))


def replay(rows, candidate: Policy) -> dict:
    rows = list(rows)
    warned = _warned_within(rows, 7)
    moves: Counter[str] = Counter()
    versions: Counter[str] = Counter()
    visits = {"current": 0, "candidate": 0}
    calls = {"current": 0, "candidate": 0}
    changed, response_changed, sample = 0, 0, []
    days = set()
    for r in rows:
        facts = LeadFacts(warning_type=r.warning_type, fraud_type=r.fraud_type, risk_level=r.risk_level,
                          residency=r.residency, in_jurisdiction=r.in_jurisdiction,
                          age=age_on(r.id_number, r.pushed_at.date()), ongoing=r.ongoing,
                          warned_within_7d=r.risk_level == 3 and r.id in warned)
        decision = tier_lead(facts, candidate, r.received_at.astimezone(CENTER_TZ))
        tier, response = _as_decided(r.tier_detail)
        versions[r.tier_detail.get("policy_version") or "unknown"] += 1
        days.add(r.received_at.astimezone(CENTER_TZ).date())
        new_response = frozenset(x.value for x in decision.response)
        worked = r.in_jurisdiction is not False  # out of the district: transferred, neither visited nor called
        for counts, step in ((visits, Response.visit), (calls, Response.call)):
            counts["current"] += worked and step in response
            counts["candidate"] += worked and step in new_response
        if decision.tier != tier:
            changed += 1
            moves[f"{tier}→{decision.tier}"] += 1
        if decision.tier != tier or new_response != response:
            response_changed += 1
            if len(sample) < SAMPLE:
                sample.append(r.id)
    n_days = max(1, len(days))
    per_day = {k: round((v["candidate"] - v["current"]) / n_days, 2) for k, v in (("visits", visits), ("calls", calls))}
    return {"policy_version": candidate.version, "leads": len(rows), "days": n_days,
            "tier_changed": changed, "response_changed": response_changed,
            "from_to": dict(sorted(moves.items())),
            "visits": {**visits, "delta": visits["candidate"] - visits["current"], "per_day": per_day["visits"]},
            "calls": {**calls, "delta": calls["candidate"] - calls["current"], "per_day": per_day["calls"]},
            "stored_policy_versions": dict(versions), "sample_lead_ids": sample}
