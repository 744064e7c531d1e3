"""一次预警一件事: a warning about a person whose work is already open joins that work instead of
starting a second ladder (policy `[merge]`; the choice is `rules.work_to_join`). The joining lead is
closed `duplicate` (重复预警) with `merged_into` the work's lead id: it keeps its own id, its source's
answer and its own timeline, and it is out of every queue; nothing of a ladder is started for it.
A more urgent one raises the work's tier — the flow (`dispatch.flows.join_work`) re-plans it."""
from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from dispatch.enums import TIER_ORDER, LeadStatus, Outcome, Tier
from dispatch.ladder.rules import OpenWork, work_to_join
from dispatch.ladder.service import lock_lead, touch
from dispatch.models import Lead
from dispatch.policy import Policy, TierDecision
from dispatch.states import ACTIVE_LEAD, LEAD
from dispatch.timeline import record
from service.core import clock


def open_work(session: Session, lead: Lead, decision: TierDecision, policy: Policy) -> Lead | None:
    """The work this freshly tiered lead joins (locked), or None: it starts its own. The person is
    locked by its linking (dispatch.outcomes.linking), so no other lead of theirs is being triaged."""
    if lead.person_id is None or not policy.merge.enabled:
        return None
    window = policy.merge.window
    rows = session.execute(select(Lead.id, Lead.tier, Lead.fraud_type, Lead.pushed_at).where(
        Lead.person_id == lead.person_id, Lead.id != lead.id, Lead.merged_into.is_(None),
        Lead.status.in_(ACTIVE_LEAD), Lead.historic.is_(False), Lead.tier.is_not(None),
        Lead.pushed_at >= lead.pushed_at - window, Lead.pushed_at <= lead.pushed_at + window)).all()
    work = work_to_join(policy, decision.tier, lead.fraud_type, lead.pushed_at,
                        [OpenWork(r.id, r.tier, r.fraud_type, r.pushed_at) for r in rows])
    if work is None:
        return None
    locked = lock_lead(session, work.id)
    return locked if locked.status in ACTIVE_LEAD else None


def join(session: Session, lead: Lead, work: Lead, decision: TierDecision, policy: Policy, actor: str) -> bool:
    """`lead` joins `work`: closed `duplicate`, `merged_into` set, an event on each. → whether it is
    more urgent than the work (the flow raises the work's tier)."""
    raise_to = TIER_ORDER[decision.tier] < TIER_ORDER[Tier(work.tier)]
    now = clock.now()
    LEAD.move(lead, LeadStatus.closed)
    lead.merged_into, lead.outcome, lead.closed_at, lead.needs_call = work.id, Outcome.duplicate.value, now, False
    lead.close_note = f"merged into lead {work.id}"
    touch(session, lead)
    data = {"window_s": int(policy.merge.window.total_seconds()), "policy_version": policy.version}
    record(session, lead.id, actor, "merged", {"into": work.id, "tier": decision.tier.value,
                                               "work_tier": work.tier, **data})
    record(session, lead.id, actor, "closed", {"outcome": Outcome.duplicate.value, "rule": "merged",
                                               "merged_into": work.id, "callback_due": None, "cancelled": [],
                                               "policy_version": policy.version})
    record(session, work.id, actor, "lead_merged", {
        "lead_id": lead.id, "source": lead.source, "source_id": lead.source_id, "tier": decision.tier.value,
        "fraud_type": lead.fraud_type, "raises_tier": raise_to, **data})
    return raise_to
