"""The response ladder on one lead: starting it at tiering, the center's actions (签收, tier override,
transfer, close), and the ladder's own steps (raise the tier, stop payment, back to the center,
one more call). Services never commit and never reach into field dispatch: work that crosses into
it (a visit, offers withdrawn when a lead ends) is in `dispatch.flows`. The pure decisions are in
`dispatch.ladder.rules`."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlmodel import Session

from dispatch import outbox
from dispatch.enums import TIER_ORDER, CallResult, Flag, LeadStatus, Outcome, Response, Tier
from dispatch.ladder import deadlines
from dispatch.ladder.rules import CALL_DEADLINES, plan_deadlines
from dispatch.ladder.sms import send_warning_sms
from dispatch.models import CallAttempt, Callback, Lead, LeadTransfer
from dispatch.policy import Policy, TierDecision
from dispatch.states import LEAD, require
from dispatch.timeline import record
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, NotFound
from service.core.money import cny


def lock_lead(session: Session, lead_id: int) -> Lead:
    """The lead, locked for this unit of work (center actions on one lead run one at a time).
    FOR NO KEY UPDATE: its id is never changed, so a case's foreign key (FOR KEY SHARE) is not held up."""
    lead = session.execute(select(Lead).where(Lead.id == lead_id).with_for_update(key_share=True)
                           .execution_options(populate_existing=True)).scalar()
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    return lead


def touch(session: Session, lead: Lead) -> None:
    """The lead changed: its time, and a `lead.updated` on every screen's board (after the commit)."""
    lead.updated_at = clock.now()
    outbox.board(session, "lead.updated", {"lead_id": lead.id, "status": lead.status, "tier": lead.tier,
                                           "assigned_team": lead.assigned_team}, district=lead.district_code)


def start_urgent_steps(session: Session, lead: Lead, decision: TierDecision, policy: Policy,
                       actor: str = "worker") -> list[str]:
    """A lead handed outside the city (管辖外移交) keeps the steps that need no place, when its tier is
    urgent (`transfer.urgent_tiers`): the warning SMS and the first call in the call queue, with the
    tier's first-call deadline — done here before the receiver has it, whatever else the tier's
    response would have asked of a district. → the steps started."""
    if decision.tier not in policy.transfer.urgent_tiers:
        return []
    started = []
    first_call = policy.deadline(decision.tier, "first_call") or policy.ladder.sms_failed_call_within
    if lead.phone:
        deadlines.add_deadlines(session, lead, {"first_call": lead.received_at + first_call})
        lead.needs_call = True
        started.append("call")
        send_warning_sms(session, lead, actor, fresh=True)
        started.append("sms")
    if started:
        record(session, lead.id, actor, "urgent_steps", {"steps": started, "tier": decision.tier,
                                                         "to": lead.transfer_to})
    return started


def start_ladder(session: Session, lead: Lead, decision: TierDecision, policy: Policy, actor: str = "worker",
                 plan: dict[str, datetime] | None = None) -> None:
    """Deadline rows (`plan`, else the decision's by `plan_deadlines`), the first warning SMS and the
    call queue for a freshly tiered lead."""
    plan = plan if plan is not None else plan_deadlines(decision, policy, lead.received_at)
    deadlines.add_deadlines(session, lead, plan)
    lead.needs_call = Response.call in decision.response
    if Response.sms in decision.response:
        send_warning_sms(session, lead, actor, fresh=True)


# ---------------------------------------------------------------- center actions
def sign_lead(session: Session, lead_id: int, who: Principal) -> Lead:
    """签收: the center takes the lead on."""
    lead = lock_lead(session, lead_id)
    require(lead, "sign")
    if lead.signed_at is not None:
        raise Conflict(f"lead {lead_id} was signed already by {lead.signed_by}")
    lead.signed_at, lead.signed_by = clock.now(), who.name
    in_time = deadlines.mark_met(session, lead_id, "sign", lead.signed_at)
    touch(session, lead)
    record(session, lead_id, who.actor, "signed", {"in_time": in_time})
    return lead


def override_tier(session: Session, lead: Lead, tier: Tier, reason: str, who: Principal, policy: Policy,
                  visit_open: bool) -> bool:
    """The center sets the tier (with a reason): the new tier's response, and its deadlines counted
    from now (a sign deadline not yet met keeps counting from receipt). → whether the new tier asks
    for a visit that is not open yet (the flow escalates)."""
    require(lead, "tier")
    if lead.tier == tier:
        raise Conflict(f"lead {lead.id} is {tier} already")
    return replan_tier(session, lead, tier, policy, visit_open, actor=who.actor, kind="tier_overridden",
                       note={"reason": reason, "by": who.name})


def replan_tier(session: Session, lead: Lead, tier: Tier, policy: Policy, visit_open: bool, *, actor: str,
                kind: str, note: dict, sign_from_now: bool = False) -> bool:
    """A new tier on a lead being worked, by the center (`tier_overridden`) or by a more urgent
    warning that joined its work (`tier_raised`): the new tier's response, its deadlines counted from
    now (an unmet sign deadline from receipt, unless `sign_from_now`; a pending one only ever brought
    forward), the policy's own tier kept in `tier_detail.policy`, `note` under `tier_detail.override`. → whether the new tier asks for a
    visit that is not open yet (the flow escalates)."""
    require(lead, "tier")
    now, spec = clock.now(), policy.tiers[tier]
    response = [r for r in Response if r in spec.response or (r == Response.visit and visit_open)]
    plan = {d.name: (lead.received_at if d.name == "sign" and not sign_from_now else now) + d.after
            for d in spec.deadlines if d.if_response is None or d.if_response in response}
    connected = session.execute(select(CallAttempt.id).where(CallAttempt.lead_id == lead.id,
                                                             CallAttempt.result == CallResult.connected)).first()
    if tier in policy.escalation.no_connection_tiers and Response.call in response and not connected:
        plan["connected_call"] = now + timedelta(minutes=policy.escalation.no_connection_minutes)
    if lead.signed_at is not None:
        plan.pop("sign", None)
    stale = [d.name for d in deadlines.deadlines_of(session, lead.id)
             if d.state == deadlines.PENDING and d.name not in plan and d.name != "callback"]
    if stale:
        deadlines.cancel_deadlines(session, lead.id, tuple(stale))
    deadlines.write_deadlines(session, lead.id, plan, replace=True, tighten=True)
    old = lead.tier
    detail = dict(lead.tier_detail or {})
    detail.setdefault("policy", {"tier": detail.get("tier"), "response": detail.get("response", [])})
    detail.update(tier=tier.value, response=[r.value for r in response],
                  deadlines={k: clock.iso(v) for k, v in plan.items()}, policy_version=policy.version,
                  override={"from": old, "to": tier.value, **note, "at": clock.iso(now)})
    lead.tier, lead.tier_detail = tier.value, detail
    lead.needs_call = Response.call in response and not connected
    touch(session, lead)
    record(session, lead.id, actor, kind,
           {"from": old, "to": tier.value, **note, "deadlines": detail["deadlines"], "cancelled": stale})
    return Response.visit in spec.response and not visit_open


def transfer_lead(session: Session, lead: Lead, to: str | None, reason: str, actor: str) -> list[str]:
    """移交 to another unit: no more work here → the deadlines cancelled."""
    LEAD.move(lead, LeadStatus.transferred)
    lead.transfer_to, lead.transfer_reason, lead.needs_call = to, reason, False
    cancelled = deadlines.cancel_deadlines(session, lead.id)
    touch(session, lead)
    record(session, lead.id, actor, "transferred", {"to": to, "reason": reason, "cancelled": cancelled})
    return cancelled


def close_lead(session: Session, lead: Lead, outcome: Outcome | str, *, actor: str, policy: Policy,
               note: str | None = None, loss_cny: Decimal | None = None, saved_cny: Decimal | None = None,
               met_in_person: bool | None = None, rule: str | None = None) -> Lead:
    """Close a lead with its outcome (and amounts); pending deadlines are cancelled and the callback
    (回访) is scheduled. 409 when the status does not allow it. Through `dispatch.flows.close_lead`,
    which also ends the lead's field work in the same transaction."""
    outcome = Outcome(outcome)
    if lead.status == LeadStatus.transferred:
        require(lead, "close")  # only a lead handed outside the city may still be closed here
    LEAD.move(lead, LeadStatus.closed)
    now = clock.now()
    lead.outcome, lead.closed_at, lead.close_note, lead.needs_call = outcome.value, now, note, False
    if loss_cny is not None:
        lead.loss_cny = loss_cny
    if saved_cny is not None:
        lead.saved_cny = saved_cny
    cancelled = deadlines.cancel_deadlines(session, lead.id)
    callback_due = None
    if outcome.value in policy.ladder.callback_outcomes:
        callback_due = now + policy.ladder.callback_delay(lead.tier)
        session.add(Callback(lead_id=lead.id, due_at=callback_due))
        deadlines.reset_deadline(session, lead.id, "callback", callback_due)
    touch(session, lead)
    record(session, lead.id, actor, "closed", {
        "outcome": outcome.value, "note": note, "loss_cny": cny(loss_cny), "saved_cny": cny(saved_cny),
        "met_in_person": met_in_person, "rule": rule, "callback_due": clock.iso(callback_due),
        "cancelled": cancelled, "policy_version": policy.version})
    return lead


def reopen(session: Session, lead: Lead, rule: str, actor: str, loss_cny: Decimal | None) -> None:
    """A closed lead back to work (a callback found the person defrauded after all)."""
    previous = lead.outcome
    LEAD.move(lead, LeadStatus.working)
    lead.outcome, lead.closed_at = None, None
    record(session, lead.id, actor, "reopened", {"rule": rule, "previous_outcome": previous,
                                                  "loss_cny": cny(loss_cny)})
    touch(session, lead)


def start_working(lead: Lead) -> None:
    """The first step taken on a tiered lead (a call, an escalation, a squad's accept)."""
    if lead.status == LeadStatus.tiered:
        LEAD.move(lead, LeadStatus.working)


# ---------------------------------------------------------------- the ladder's own steps
def raise_tier(session: Session, lead: Lead, tier: Tier, rule: str, actor: str, policy: Policy) -> None:
    if lead.tier is not None and TIER_ORDER[Tier(lead.tier)] <= TIER_ORDER[tier]:
        return
    detail = dict(lead.tier_detail or {})
    detail.setdefault("policy", {"tier": detail.get("tier"), "response": detail.get("response", [])})
    detail["tier"] = tier.value
    record(session, lead.id, actor, "tier_raised", {"from": lead.tier, "to": tier.value, "rule": rule,
                                                    "policy_version": policy.version})
    lead.tier, lead.tier_detail = tier.value, detail
    touch(session, lead)


def stop_payment(session: Session, lead: Lead, rule: str, actor: str) -> None:
    """止付 and 案件跟进: the person says the money is gone."""
    if Flag.stop_payment not in lead.flags:
        lead.flags = [*lead.flags, Flag.stop_payment.value]
    record(session, lead.id, actor, "stop_payment", {"rule": rule})
    record(session, lead.id, actor, "case_follow_up", {"rule": rule})


def return_to_center(session: Session, lead: Lead, rule: str, actor: str, policy: Policy) -> None:
    lead.needs_call = False
    deadlines.cancel_deadlines(session, lead.id, CALL_DEADLINES)
    record(session, lead.id, actor, "returned_to_center", {"rule": rule, "policy_version": policy.version})
    touch(session, lead)


def add_call(session: Session, lead: Lead, rule: str, policy: Policy, actor: str) -> None:
    lead.needs_call = True
    deadlines.write_deadlines(session, lead.id, {"first_call": clock.now() + policy.ladder.sms_failed_call_within})
    record(session, lead.id, actor, "escalated", {"rule": rule, "to": "call", "policy_version": policy.version})
    touch(session, lead)


def _handover(session: Session, lead_id: int) -> dict | None:
    t = session.execute(select(LeadTransfer).where(LeadTransfer.lead_id == lead_id)
                        .order_by(LeadTransfer.id.desc()).limit(1)).scalar()
    if t is None:
        return None
    return {"id": t.id, "from": t.from_district, "to": t.to_district, "state": t.state, "due_at": clock.iso(t.due_at)}


def lead_state(session: Session, lead: Lead) -> dict:
    """What a center action answers: the lead's status, tier and deadlines after it."""
    return {"id": lead.id, "status": lead.status, "tier": lead.tier, "signed_at": clock.iso(lead.signed_at),
            "signed_by": lead.signed_by, "outcome": lead.outcome, "closed_at": clock.iso(lead.closed_at),
            "transfer_to": lead.transfer_to, "needs_call": lead.needs_call, "flags": list(lead.flags),
            "district_code": lead.district_code, "handover": _handover(session, lead.id),
            "loss_cny": cny(lead.loss_cny), "saved_cny": cny(lead.saved_cny),
            "deadlines": [{"name": d.name, "due_at": clock.iso(d.due_at), "state": d.state,
                           "met_at": clock.iso(d.met_at)} for d in deadlines.deadlines_of(session, lead.id)]}
