"""Tiering (分级分类): the policy (dispatch.policy) evaluated by a pure function on a lead's facts."""
from __future__ import annotations

from datetime import date, datetime

from dispatch.enums import TIER_ORDER, Response
from dispatch.identity import birth_date_from_id
from dispatch.policy import LeadFacts, Policy, TierDecision


def tier_lead(facts: LeadFacts, policy: Policy, received_at: datetime) -> TierDecision:
    fired = [(i, r) for i, r in enumerate(policy.rules)
             if r.tier is not None and policy.active(r) and r.fires(facts)]
    tier = min((r.tier for _, r in fired), key=TIER_ORDER.__getitem__, default=policy.default_tier)  # type: ignore[arg-type]
    spec = policy.tiers[tier]
    # tier-setting rules at the winning tier, plus any rule whose added steps apply
    used = [(i, r) for i, r in fired if r.tier == tier or r.add_response]
    used += [(i, r) for i, r in enumerate(policy.rules)
             if r.tier is None and policy.active(r) and r.fires(facts, tier)]
    used.sort(key=lambda ir: ir[0])
    reasons = [r.name for _, r in used]
    if not fired:
        reasons.insert(0, "default_tier")
    steps = set(spec.response)
    for _, r in used:
        steps.update(r.add_response)
    response = [s for s in Response if s in steps]
    deadlines = {d.name: received_at + d.after for d in spec.deadlines
                 if d.if_response is None or d.if_response in steps}
    return TierDecision(
        tier=tier, response=response,
        reasons=reasons,
        deadlines=deadlines,
        escalation=[s for s in spec.escalation if s not in steps],
        policy_version=policy.version)


def age_on(id_number: str | None, on: date) -> int | None:
    born = birth_date_from_id(id_number)
    if born is None:
        return None
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return age if age >= 0 else None
