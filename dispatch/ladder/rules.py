"""The response ladder as plain functions on plain data: what the next step is after a call, a
missed deadline or a failed SMS, and which rule of the policy says so. `dispatch.ladder.service` loads,
calls these, and saves."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from dispatch.enums import TIER_ORDER, CallResult, Outcome, Response, Tier
from dispatch.policy import Policy, TierDecision

CALL_DEADLINES = ("first_call", "connected_call")
VISIT_DEADLINES = ("visit", "on_scene")


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the ladder does. kind: visit (见面劝阻) | center (back to the center's 研判) |
    close | raise_tier | call (add a call) | contact (the next round of persistent contact) |
    none (recorded only)."""
    kind: str
    rule: str
    outcome: Outcome | None = None
    tier: Tier | None = None


def plan_deadlines(decision: TierDecision, policy: Policy, received_at: datetime) -> dict[str, datetime]:
    """The rows to write at tiering: the decision's deadlines, plus `connected_call` for the tiers
    that escalate when no call connects in time (escalation.no_connection_*)."""
    plan = dict(decision.deadlines)
    e = policy.escalation
    if decision.tier in e.no_connection_tiers and Response.call in decision.response:
        plan["connected_call"] = received_at + timedelta(minutes=e.no_connection_minutes)
    return plan


def visit_deadline(policy: Policy, tier: Tier | str, now: datetime) -> tuple[str, datetime]:
    """The deadline a visit requested by an escalation gets: the tier's own, else ladder.visit_within."""
    for name in ("on_scene", "visit"):
        after = policy.deadline(tier, name)
        if after is not None:
            return name, now + after
    return "visit", now + policy.ladder.visit_within


def after_call(policy: Policy, *, tier: Tier | str, result: CallResult, outcome: Outcome | None,
               failed_calls: int, placed: bool, visit_required: bool) -> tuple[list[Step], bool]:
    """The steps after a call, and whether the lead stays in the call queue. `failed_calls` counts
    this call; `placed` = located in the district; `visit_required` = a visit is already asked for
    (policy or district rule: then a dissuaded call does not close the lead)."""
    ladder, tier = policy.ladder, Tier(tier)
    if result == CallResult.invalid_number:
        step = ladder.invalid_number_placed if placed else ladder.invalid_number_unplaced
        return [Step(step, "invalid_number_placed" if placed else "invalid_number_unplaced")], False
    if result == CallResult.busy and tier in ladder.busy_line_to_visit:
        return [Step("visit", "busy_line")], True  # the scammer may be on the line: go now, keep calling
    if result != CallResult.connected:
        if result in ladder.failed_results and failed_calls >= policy.escalation.failed_calls_to_visit:
            return [Step("visit", "failed_calls")], False
        return [], True
    match outcome:
        case Outcome.dissuaded if tier in ladder.close_on_dissuaded and not visit_required:
            return [Step("close", "dissuaded_by_phone", outcome=Outcome.dissuaded)], False
        case Outcome.dissuaded:
            return [Step("none", "dissuaded_visit_still_required")], False
        case Outcome.already_defrauded:
            return [Step("raise_tier", "already_defrauded", tier=ladder.already_defrauded_tier),
                    Step("visit", "already_defrauded")], False
        case Outcome.refused:
            return [Step(ladder.refused_by_phone, "refused_by_phone")], False
        case Outcome.false_alarm | Outcome.duplicate:
            return [Step("close", "closed_by_phone", outcome=outcome)], False
    return [], False


SCHEDULED = frozenset({"contact"})  # rows that come due on purpose (a contact round): never an alarm


def after_missed(policy: Policy, name: str, tier: Tier | str | None) -> Step | None:
    """What a missed deadline does beyond the `deadline_missed` record."""
    if name == "connected_call" and tier and Tier(tier) in policy.escalation.no_connection_tiers:
        return Step("visit", "no_connection")
    if name == "contact":
        return Step("contact", "persistent_contact")
    return None


def after_sms_failed(policy: Policy, tier: Tier | str | None) -> Step | None:
    if tier and Tier(tier) in policy.ladder.sms_failed_to_call:
        return Step("call", "sms_failed")
    return None


@dataclass(frozen=True, slots=True)
class OpenWork:
    """A lead of the same person being worked (tiered or working, not itself merged)."""
    id: int
    tier: str
    fraud_type: str
    pushed_at: datetime


def work_to_join(policy: Policy, tier: Tier | str, fraud_type: str, pushed_at: datetime,
                 works: list[OpenWork]) -> OpenWork | None:
    """一次预警一件事: the open work a new warning about the same person joins instead of starting a
    ladder of its own (policy `[merge]`): pushed within `window` of it, and the same signal (the same
    fraud type) or one at least as urgent (its tier the same or higher). Of several, the most urgent
    work, then the oldest. None: the warning starts its own work."""
    if not policy.merge.enabled:
        return None
    rank = TIER_ORDER[Tier(tier)]
    fits = [w for w in works if abs(w.pushed_at - pushed_at) <= policy.merge.window
            and (w.fraud_type == fraud_type or rank <= TIER_ORDER[Tier(w.tier)])]
    return min(fits, key=lambda w: (TIER_ORDER[Tier(w.tier)], w.pushed_at, w.id), default=None)
