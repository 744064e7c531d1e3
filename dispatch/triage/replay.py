"""Policy replay: how stored leads would be tiered under a candidate policy, nothing written.

`replay_query` selects the stored facts; `replay` is a pure function over those rows (the same
`tier_lead` the workers run), so the CLI (sync) and the API (async) share it. Every fact the workers
compute is computed again here as they computed it: the person's earlier warnings in 7 and 30 days
(`warned_within_7d`, `warned_30d`) are counted over the leads that had arrived before each one, of
the person as the workers had linked them by then (identifiers joined in arrival order, within the
person each lead belongs to now: a split a commander made since is taken as known), leads that
joined another's work not counted. Which leads joined another's work is taken as stored (the
candidate's own `[merge]` is not replayed); those leads are neither visits nor calls."""
from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, func, or_, select, true

from dispatch.enums import LeadStatus, Response
from dispatch.models import Lead, LeadEvent
from dispatch.person import WARNED_DAYS, identifiers
from dispatch.policy import LeadFacts, Policy
from dispatch.triage.tiering import age_on, tier_lead
from service.core.clock import CENTER_TZ

SAMPLE = 20


def replay_query(since: datetime | None = None, until: datetime | None = None) -> Select:
    """Every lead a policy has tiered (not those still waiting for a worker) received in the window
    (`in_range`), and the other tiered leads of their persons (for the warned facts), in the order the
    workers triaged them (their `placed` event; leads without one, loaded in bulk, first by id)."""
    in_range = and_(true(), *([Lead.received_at >= since] if since is not None else []),
                    *([Lead.received_at < until] if until is not None else []))
    tiered = and_(Lead.status != LeadStatus.received, Lead.tier_detail.is_not(None))
    people = select(Lead.person_id).where(tiered, in_range, Lead.person_id.is_not(None))
    triaged = (select(func.min(LeadEvent.id)).where(LeadEvent.lead_id == Lead.id, LeadEvent.kind == "placed")
               .scalar_subquery())
    return (select(Lead.id, Lead.pushed_at, Lead.received_at, Lead.warning_type, Lead.fraud_type, Lead.risk_level,
                   Lead.residency, Lead.in_jurisdiction, Lead.id_number, Lead.phone, Lead.flags, Lead.ongoing,
                   Lead.tier_detail, Lead.person_id, Lead.merged_into, in_range.label("in_range"))
            .where(tiered, or_(in_range, Lead.person_id.in_(people))).order_by(triaged.asc().nulls_first(), Lead.id))


def warned_facts(rows) -> dict[int, tuple[int, int]]:
    """{lead id: (earlier warnings in 7 days, in 30 days)} as the worker counted them at triage
    (dispatch.person.earlier_warnings_query): rows in the order the workers triaged them; a lead's
    person then was the leads triaged before it joined to it through shared identifiers."""
    parent: dict[tuple, tuple] = {}
    seen: dict[tuple, list[tuple[datetime, int]]] = {}  # component root → its warnings so far

    def find(k: tuple) -> tuple:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    out: dict[int, tuple[int, int]] = {}
    for r in rows:
        keys = [(r.person_id, *k) for k in identifiers(r.phone, r.id_number, r.flags)] if r.person_id else []
        if not keys:
            out[r.id] = (0, 0)
            continue
        for k in keys:
            if k not in parent:
                parent[k], seen[k] = k, []
        root = find(keys[0])
        for k in keys[1:]:
            other = find(k)
            if other != root:
                parent[other] = root
                seen[root] += seen.pop(other)
        month = [p for p, i in seen[root] if (p, i) < (r.pushed_at, r.id)
                 and p > r.pushed_at - timedelta(days=WARNED_DAYS)]
        out[r.id] = (sum(p > r.pushed_at - timedelta(days=7) for p in month), len(month))
        if r.merged_into is None:  # a lead that joined another's work is the same warning again
            seen[root].append((r.pushed_at, r.id))
    return out


def _as_decided(detail: dict) -> tuple[str, frozenset[str]]:
    """The tier and response the policy gave (a center override or a raise keeps it under `policy`)."""
    base = detail.get("policy") or detail
    return base.get("tier"), frozenset(base.get("response", []))


def replay(rows, candidate: Policy) -> dict:
    rows = list(rows)
    warned = warned_facts(rows)
    rows = [r for r in rows if r.in_range]
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
                          warned_within_7d=r.risk_level == 3 and warned[r.id][0] > 0, warned_30d=warned[r.id][1])
        decision = tier_lead(facts, candidate, r.received_at.astimezone(CENTER_TZ))
        tier, response = _as_decided(r.tier_detail)
        versions[r.tier_detail.get("policy_version") or "unknown"] += 1
        days.add(r.received_at.astimezone(CENTER_TZ).date())
        new_response = frozenset(x.value for x in decision.response)
        # out of the district: transferred; joined another's work: no ladder — neither visited nor called
        worked = r.in_jurisdiction is not False and r.merged_into is None
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
