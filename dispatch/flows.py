"""Work that crosses capabilities, each flow one named function (as Netflix Dispatch's `flows.py`):
a reader finds a lead's whole path here, not inside commit listeners or another capability's
service. The capabilities below never import each other; they decide and change their own
records, and these flows put their steps in order, in the caller's one transaction.

    triage_lead      linked to its person → placed → tiered → ladder started (deadlines, SMS, call queue)
                     → visit requested; or, the person's work being open, joined to it (join_work)
    apply_steps      what the ladder decided after a call, a miss or a failed SMS, done
    close_lead       closed with an outcome → callback scheduled, the lead's field work ended
    (handovers between districts and to other units: dispatch.handovers)
    arrive / complete_visit   the squad on scene / done → the ladder's deadlines met, the lead closed
    sweep_deadlines  missed deadlines → the ladder's steps, an alarm each, a late squad chased
    checkin          the squad on scene is safe → the next check-in's deadline
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlmodel import Session

from dispatch.city import service as city
from dispatch.enums import CallbackResult, CallResult, LeadStatus, Outcome, Response, SmsStatus, Tier
from dispatch.field import service as field
from dispatch.field.offers import (
    assignment_public,
    board_lead,
    chase,
    end_other_offers,
    late_squad,
    on_scene_squad,
    updated,
)
from dispatch.field.squads import FieldConfig
from dispatch.field.visits import end_field_work, open_visit, request_visit, required_visit, visit_still_required
from dispatch.intake import historic
from dispatch.ladder import (
    callbacks,
    calls,
    contact,
    deadlines,
    family,
    merge,
    phone,
    replies,
    robot,
    sms,
    stop_payment,
)
from dispatch.ladder import service as ladder
from dispatch.ladder.rules import SCHEDULED, Step, plan_deadlines, visit_deadline
from dispatch.models import CallAttempt, Callback, Lead
from dispatch.outcomes import linking
from dispatch.outcomes.cases import rematch_people
from dispatch.outcomes.feedback import feed_back
from dispatch.policy import Policy, TierDecision
from dispatch.shift import alarms
from dispatch.states import ACTIVE_LEAD, LEAD, handed_out
from dispatch.timeline import record
from dispatch.triage import service as triage
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, Forbidden, NotFound


# ---------------------------------------------------------------- a new lead (workers)
def triage_lead(session: Session, lead: Lead, placement_of, policy: Policy, actor: str = "worker") -> None:
    """Link a received lead to its person (一人一档), place and tier it (the person's earlier warnings
    count); a lead in the city joins the person's open work (一次预警一件事) or gets its own work
    started (by the district it is in, or the city center); one handed outside the city gets its
    urgent steps (SMS, first call) before it leaves; the person's cases are matched again (预警后发案:
    a case reported before this lead)."""
    link = linking.link_lead(session, lead, actor)
    # a person first known by this lead has no earlier warnings, no open work, no other identifiers:
    # three queries (and the flushes they would force) fewer for most leads
    fresh = link.person_id is None or link.created
    decision = triage.place_and_tier(session, lead, placement_of, policy, actor, warnings=(0, 0) if fresh else None)
    if lead.status == LeadStatus.tiered:
        work = None if fresh else merge.open_work(session, lead, decision, policy)
        if work is not None:
            join_work(session, lead, work, decision, policy, actor)
        else:
            start_work(session, lead, decision, policy, actor)
    elif handed_out(lead):
        ladder.start_urgent_steps(session, lead, decision, policy, actor)
    people = [p for p in (link.person_id, *link.merged) if p is not None]
    own = [(k, v) for k, v in (("phone", lead.phone), ("id_number", lead.id_number)) if v]
    known = link.keys if fresh else linking.identifiers_of(session, people)
    rematch_people(session, people, own + known, actor, fresh=fresh)


def join_work(session: Session, lead: Lead, work: Lead, decision: TierDecision, policy: Policy, actor: str) -> None:
    """The lead joins the person's open work: no ladder of its own; a more urgent one raises the
    work's tier, its deadlines re-planned from now as an override does (a visit if the tier asks)."""
    if merge.join(session, lead, work, decision, policy, actor):
        note = {"reason": f"merged lead {lead.id}", "rule": "merged_lead", "lead_id": lead.id}
        if ladder.replan_tier(session, work, decision.tier, policy, open_visit(session, work.id) is not None,
                              actor=actor, kind="tier_raised", note=note, sign_from_now=True):
            escalate_to_visit(session, work, "merged_lead", policy, actor)


def start_work(session: Session, lead: Lead, decision: TierDecision, policy: Policy, actor: str) -> None:
    """The tier's response begins: a required visit with the deadline the ladder promises for it,
    then the ladder's deadline rows, the first warning SMS and the call queue."""
    plan = plan_deadlines(decision, policy, lead.received_at)
    if Response.visit in decision.response:
        request_visit(session, lead, "policy", actor=actor, due_at=plan.get("on_scene") or plan.get("visit"), first=True)
    ladder.start_ladder(session, lead, decision, policy, actor, plan)
    apply_steps(session, lead, contact.start(session, lead, policy, clock.now(), actor), policy, actor)


def load_historic(session: Session, leads: list, placement_of, policy: Policy, actor: str = "import") -> int:
    """历史线索: `[(LeadIn, flags, outcome, closed_at)]` not stored before are stored `historic`, placed
    and tiered (the records, the KPIs, the person's warnings) and matched to the person's cases —
    and nothing else: no ladder, deadline, SMS, call queue, visit or feedback. A lead in the
    district ends closed (with the file's outcome, if any, at its `closed_at` or pushed time), so no
    list of open work ever shows it; one outside stays transferred. The caller never sends this
    unit of work's outbox (what the board would hear of history is not news). → leads stored."""
    extra = {(lead.source, lead.source_id): (outcome, closed_at) for lead, _f, outcome, closed_at in leads}
    ids = historic.insert_leads(session, [(lead, flags) for lead, flags, _o, _c in leads], actor)
    if not ids:
        return 0
    leads = session.execute(select(Lead).where(Lead.id.in_(ids)).order_by(Lead.id)).scalars().all()
    people: set[int] = set()
    for lead in leads:  # one record per person, as the workers link them; the tier counts the person's warnings
        link = linking.link_lead(session, lead, actor)
        people.update(p for p in (link.person_id, *link.merged) if p is not None)
    with session.no_autoflush:
        for lead in leads:
            triage.place_and_tier(session, lead, placement_of, policy, actor)
            if lead.status == LeadStatus.tiered:
                outcome, closed_at = extra[(lead.source, lead.source_id)]
                LEAD.move(lead, LeadStatus.closed)
                lead.outcome, lead.closed_at = outcome, closed_at or lead.pushed_at
                record(session, lead.id, actor, "closed", {"outcome": outcome, "historic": True})
    session.flush()
    own = {(k, v) for lead in leads for k, v in (("phone", lead.phone), ("id_number", lead.id_number)) if v}
    rematch_people(session, sorted(people), sorted(own), actor)
    return len(ids)


# ---------------------------------------------------------------- the ladder's steps
def escalate_to_visit(session: Session, lead: Lead, rule: str, policy: Policy, actor: str) -> None:
    """A face-to-face visit becomes required, with its deadline row. A visit already required keeps
    its own: open, or failed and with the center (no second round of offers to the same squads)."""
    name, due = visit_deadline(policy, lead.tier or policy.default_tier, clock.now())
    visit, new = required_visit(session, lead.id), False
    if visit is None:
        visit, new = request_visit(session, lead, rule, actor=actor, due_at=due)
    if new:
        deadlines.write_deadlines(session, lead.id, {name: due})
    ladder.start_working(lead)
    record(session, lead.id, actor, "escalated", {"rule": rule, "to": "visit", "visit_id": visit.id,
                                                  "already_open": not new, "due_at": clock.iso(visit.due_at),
                                                  "policy_version": policy.version})


def apply_steps(session: Session, lead: Lead, steps: list[Step], policy: Policy, actor: str,
                note: str | None = None) -> None:
    """The ladder's steps, in order; a step whose rule the policy names in `family.notify_on` (a busy
    line, a refusal, money already gone) also tells the person's family (保护圈)."""
    told = set()
    for step in steps:
        if step.rule in policy.family.notify_on and step.rule not in told:
            told.add(step.rule)
            family.notify(session, lead, step.rule, policy, actor)
        match step.kind:
            case "visit":
                escalate_to_visit(session, lead, step.rule, policy, actor)
            case "center":
                ladder.return_to_center(session, lead, step.rule, actor, policy)
            case "close":
                close_lead(session, lead, step.outcome, actor=actor, note=note, policy=policy, rule=step.rule)
            case "raise_tier":
                ladder.raise_tier(session, lead, step.tier, step.rule, actor, policy)
                ladder.stop_payment(session, lead, step.rule, actor)
            case "call":
                ladder.add_call(session, lead, step.rule, policy, actor)
            case "contact":
                apply_steps(session, lead, contact.run_round(session, lead, policy, clock.now(), actor), policy, actor)


def apply_lead_steps(session: Session, steps: list[tuple[int, Step]], policy: Policy, actor: str) -> None:
    """Steps decided for several leads (the sweep, SMS outcomes): each lead locked in turn, and only
    a lead still being worked acts on them."""
    for lead_id, step in steps:
        lead = ladder.lock_lead(session, lead_id)
        if lead.status in ACTIVE_LEAD:
            apply_steps(session, lead, [step], policy, actor)


# ---------------------------------------------------------------- a lead's end
def close_lead(session: Session, lead: Lead, outcome: Outcome | str, *, actor: str, policy: Policy,
               note: str | None = None, loss_cny: Decimal | None = None, saved_cny: Decimal | None = None,
               met_in_person: bool | None = None, rule: str | None = None) -> Lead:
    """The one way a lead closes (the center, a dissuading call, a completed visit): the ladder's
    close, and no squad left working a closed lead — its open offers are withdrawn at once."""
    ladder.close_lead(session, lead, outcome, actor=actor, policy=policy, note=note, loss_cny=loss_cny,
                      saved_cny=saved_cny, met_in_person=met_in_person, rule=rule)
    city.cancel_open(session, lead.id, "lead_closed")
    end_field_work(session, lead, actor, "lead_closed")
    alarms.resolve(session, lead.id, None, policy, "lead_closed")
    feed_back(session, lead, "closed", {"outcome": lead.outcome, "closed_at": clock.iso(lead.closed_at)})
    return lead


def close(session: Session, lead_id: int, outcome: Outcome, who: Principal, policy: Policy, *, note: str | None,
          loss_cny: Decimal | None, saved_cny: Decimal | None) -> Lead:
    lead = ladder.lock_lead(session, lead_id)
    return close_lead(session, lead, outcome, actor=who.actor, policy=policy, note=note, loss_cny=loss_cny,
                      saved_cny=saved_cny, rule="center")


def sign(session: Session, lead_id: int, who: Principal, policy: Policy) -> Lead:
    """签收 — a missed sign-off's alarm ends with it."""
    lead = ladder.sign_lead(session, lead_id, who)
    alarms.resolve(session, lead_id, ("sign",), policy, "signed")
    feed_back(session, lead, "signed", {"signed_at": clock.iso(lead.signed_at)})
    return lead


# ---------------------------------------------------------------- the center's steps on a lead
def override_tier(session: Session, lead_id: int, tier: Tier, reason: str, who: Principal, policy: Policy) -> Lead:
    lead = ladder.lock_lead(session, lead_id)
    if ladder.override_tier(session, lead, tier, reason, who, policy, open_visit(session, lead_id) is not None):
        escalate_to_visit(session, lead, "center_override", policy, who.actor)
    return lead


def record_call(session: Session, lead_id: int, result: CallResult, outcome: Outcome | None, note: str | None,
                who: Principal, policy: Policy) -> tuple[Lead, CallAttempt, list[Step]]:
    lead, attempt, steps = calls.record_call(session, lead_id, result, outcome, note, who, policy,
                                             lambda i: visit_still_required(session, i))
    alarms.resolve(session, lead_id, ("first_call",) + (("connected_call",) if result == CallResult.connected else ()),
                   policy, "called")
    if result == CallResult.connected:  # reached: persistent contact ends
        contact.stop(session, lead_id, "connected", who.actor)
        feed_back(session, lead, "reached", {"result": "connected", "by": who.actor})
    if handed_out(lead):  # its place is another unit's: no squad of ours, no contact rounds
        steps = [x for x in steps if x.kind not in ("visit", "contact")]
    apply_steps(session, lead, steps, policy, who.actor, note)
    return lead, attempt, steps


# ---------------------------------------------------------------- calls from the phone network, robot callers
def record_dial(session: Session, dial_id: int, heard: phone.Heard, policy: Policy) -> str | None:
    """The phone network's answer to a desk's dial (SIP via baresip), recorded as that operator's
    call through `record_call`: the ladder escalates as for a typed-in result (a busy line on an
    urgent lead sends a squad at once). No call is recorded when the line did not carry it, nor
    when the lead was closed while it rang. → the dial's state (None: the sweep gave it up first)."""
    dial, result = phone.finish_dial(session, dial_id, heard)
    if dial is None or result is None:
        return dial.state if dial is not None else None
    attempt = None
    if phone.callable_lead(session, dial.lead_id):
        _lead, attempt, _steps = record_call(session, dial.lead_id, result, None, None,
                                             Principal(dial.actor, dial.actor_role), policy)
    phone.close_dial(session, dial, heard, attempt)
    return dial.state


def record_call_outcome(session: Session, call_id: int, outcome: Outcome, note: str | None, who: Principal,
                        policy: Policy) -> tuple[Lead, CallAttempt, list[Step]]:
    """What the person said on a call the phone network connected: one call, its outcome, the ladder's steps."""
    lead, attempt, steps = calls.record_outcome(session, call_id, outcome, note, who, policy,
                                                lambda i: visit_still_required(session, i))
    apply_steps(session, lead, steps, policy, who.actor, note)
    return lead, attempt, steps


def record_robot_call(session: Session, report: robot.Report, tags: robot.TagMap, who: Principal,
                      policy: Policy) -> tuple[Lead, CallAttempt, list[Step], bool]:
    """A robot caller's result (AI 外呼), its labels mapped to quanzu's result and outcome, recorded
    through `record_call` (已转账 raises the lead to P0 as an operator's `already_defrauded` does).
    A robot that reached the person but brought back no outcome hands the lead to a person: one
    more call in the desk's queue. Resent with the same `call_id` → the call recorded before.
    → (lead, call, steps, duplicate)."""
    lead_id = robot.find_lead(session, report.lead_id, report.source, report.source_id)
    seen = robot.already_recorded(session, who.name, lead_id, report.call_id)
    if seen is not None:
        return ladder.lock_lead(session, lead_id), seen, [], True
    result, outcome, _unmapped = tags.apply(report.result, list(report.tags))
    lead, attempt, steps = record_call(session, lead_id, result, outcome, report.note, who, policy)
    robot.describe(attempt, report)
    if result == CallResult.connected and outcome is None and lead.status in ACTIVE_LEAD:
        more = [Step("call", "robot_no_outcome")]
        apply_steps(session, lead, more, policy, who.actor)
        steps = [*steps, *more]
    return lead, attempt, steps, False


def record_callback(session: Session, lead_id: int, result: CallbackResult, loss_cny: Decimal | None,
                    note: str | None, who: Principal, policy: Policy) -> tuple[Lead, Callback, Callback | None]:
    """One 回访 attempt → (lead, the attempt, the next one when not reached and attempts remain)."""
    lead, cb, retry, reopened = callbacks.record_callback(session, lead_id, result, loss_cny, note, who, policy)
    alarms.resolve(session, lead_id, ("callback",), policy, "callback_done")
    if reopened:
        escalate_to_visit(session, lead, "callback_defrauded", policy, who.actor)
    return lead, cb, retry


def sms_receipt(session: Session, gateway_message_id: str, status: SmsStatus, policy: Policy) -> tuple[bool, bool]:
    """A delivery receipt → (changed, escalated)."""
    changed, steps = sms.apply_receipt(session, gateway_message_id, status, policy)
    apply_lead_steps(session, steps, policy, "worker")
    return changed, bool(steps)


def deliver_sms(session: Session, message_ids: list[int], gateway, policy: Policy, max_attempts: int) -> list[str]:
    """Pending SMS to the gateway (sms.deliver_many), and the ladder's steps for warnings that failed."""
    done = sms.deliver_many(session, message_ids, gateway, policy, max_attempts)
    for _result, steps in done:
        apply_lead_steps(session, steps, policy, "worker")
    return [result for result, _steps in done]


def sms_reply(session: Session, phone: str, to: str | None, text: str, cfg: FieldConfig, online=None) -> str:
    """A reply by SMS (MO) → what it became. A squad member's `1` / `2` to an offer SMS is the app's
    accept / decline, as that member (an offer gone meanwhile is recorded as refused); a warned
    person's reply goes on the lead's timeline and the board; an unknown sender's is only kept."""
    phone = replies.normalize_phone(phone)
    match = replies.match_reply(session, phone, text)
    if isinstance(match, replies.OfferReply):
        kind = "offer_accept" if match.accept else "offer_decline"
        try:
            with session.begin_nested():
                if match.accept:
                    field.accept(session, match.assignment_id, match.member)
                else:
                    field.decline(session, match.assignment_id, match.member, "sms_reply", cfg, online)
        except (Conflict, Forbidden, NotFound) as exc:
            replies.keep(session, phone, to, text, "offer_refused", match, str(exc)[:200])
            return "offer_refused"
        replies.keep(session, phone, to, text, kind, match)
        return kind
    if isinstance(match, replies.PersonReply):
        replies.person_replied(session, match, phone, text)
        contact.stop(session, match.lead_id, "replied", "sms")  # reached: persistent contact ends
        replies.keep(session, phone, to, text, "reply", match)
        return "reply"
    replies.keep(session, phone, to, text, "unknown")
    return "unknown"


LATE = ("on_scene", "visit")


def sweep_deadlines(session: Session, now: datetime, policy: Policy, limit: int, cfg: FieldConfig | None = None,
                    online=None) -> int:
    """Act on up to `limit` due deadlines → how many were missed. Each miss raises an alarm; a squad
    that accepted and is not on scene by its deadline is chased (its alarm names it, and the next
    squad is offered the visit as backup); a missed check-in names the squad on scene."""
    missed = deadlines.claim_missed(session, now, policy, limit)
    apply_lead_steps(session, missed.steps, policy, "sweep")
    stop_payment.lapse(session, now)
    misses = []
    for m in missed.rows:
        if m.name in SCHEDULED:  # a contact round came due: the schedule, not a miss
            continue
        squad, data = None, {}
        if m.name == city.DEADLINE:  # nobody accepted the handover: back to the city center
            t = city.expire(session, ladder.lock_lead(session, m.lead_id), now)
            if t is None:
                continue
            data = {"transfer_id": t.id, "from": t.from_district, "to": t.to_district}
            ladder.touch(session, session.get(Lead, m.lead_id))
        elif m.name in LATE:
            squad = late_squad(session, m.lead_id)
            if squad is not None and policy.shift.backup_when_late and cfg is not None:
                backup = chase(session, squad.visit_id, cfg, online)
                data = {"chased": True, "backup_assignment_id": backup.id if backup else None,
                        "backup_team_code": backup.team_code if backup else None}
        elif m.name == "checkin":
            squad = on_scene_squad(session, m.lead_id)
        misses.append(alarms.Miss(m.lead_id, m.name, m.due_at, m.id, squad.team_code if squad else None,
                                  squad.id if squad else None, data))
    alarms.raise_alarms(session, misses, policy, now)
    return missed.count


def escalate_alarms(session: Session, now: datetime, policy: Policy) -> int:
    return alarms.escalate_due(session, policy, now)


# ---------------------------------------------------------------- 止付
def answer_stop_payment(session: Session, request_id: int, status: str, saved: Decimal | None, note: str | None,
                        who: Principal, policy: Policy):
    """The bank answered: the request's deadline met, its alarm (if it lapsed unanswered) resolved."""
    r = stop_payment.answer(session, request_id, status, saved, note, who)
    alarms.resolve(session, r.lead_id, ("stop_payment",), policy, "bank_answered")
    return r


# ---------------------------------------------------------------- the squad's visit
def arrive(session: Session, assignment_id: int, who: Principal, policy: Policy, at: datetime | None = None) -> dict:
    """到场: the squad is with the person — the on-scene (or visit) deadline is met (at the phone's
    time), its alarms end, and the first check-in is due."""
    a, lead = field.arrive(session, assignment_id, who, at, policy.shift.checkin_every)
    for name in LATE:
        deadlines.mark_met(session, lead.id, name, a.arrived_at)
    deadlines.reset_deadline(session, lead.id, "checkin", a.checkin_due_at)
    alarms.resolve(session, lead.id, LATE, policy, "arrived")
    return assignment_public(a, lead)


def checkin(session: Session, assignment_id: int, who: Principal, policy: Policy, at: datetime | None = None) -> dict:
    """报平安: the next check-in is due `field.checkin_every` later; a missed one's alarm ends."""
    a, lead = field.checkin(session, assignment_id, who, at, policy.shift.checkin_every)
    deadlines.reset_deadline(session, lead.id, "checkin", a.checkin_due_at)
    alarms.resolve(session, lead.id, ("checkin",), policy, "checked_in")
    return assignment_public(a, lead)


def complete_visit(session: Session, assignment_id: int, who: Principal, c: field.Completion,
                   policy: Policy) -> dict:
    """见面劝阻 done: the lead closed with the visit's outcome (a lead the center closed or transferred
    meanwhile keeps that; the outcome stays on the visit)."""
    a, lead = field.complete(session, assignment_id, who, c)
    deadlines.cancel_deadlines(session, lead.id, ("checkin",))
    end_other_offers(session, a, lead, who.actor)
    alarms.resolve(session, lead.id, LATE + ("checkin",), policy, "visit_completed")
    feed_back(session, lead, "visited", {"visit_id": a.visit_id, "outcome": c.outcome,
                                         "met_in_person": c.met_in_person})
    if LEAD.can(lead.status, LeadStatus.closed):
        close_lead(session, lead, c.outcome, actor=who.actor, policy=policy, note=c.note, loss_cny=c.loss_cny,
                   saved_cny=c.saved_cny, met_in_person=c.met_in_person, rule="visit_completed")
    updated(session, a, lead)
    board_lead(session, lead, outcome=lead.outcome, visit={"id": a.visit_id, "status": "done"})
    return assignment_public(a, lead)
