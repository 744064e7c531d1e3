"""The response ladder on stored leads: deadlines as rows, center actions (签收, tier override,
transfer, close), calls, SMS outcomes, callbacks (回访) and the deadline sweep.

Services never commit; the request or the task does. Each change writes a `lead_event`. Time comes
from `service.core.clock`. The pure decisions (which step, which rule) are in `dispatch.ladder`.

Seams other packages use: `close_lead` (field dispatch closes a completed visit through it),
`mark_met` (a step done: "on_scene" when a squad arrives), `start_ladder` (at tiering)."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from dispatch.enums import (
    ACTION_STATUSES,
    TIER_ORDER,
    CallbackResult,
    CallResult,
    DeadlineState,
    Flag,
    LeadStatus,
    Outcome,
    Response,
    SmsPurpose,
    SmsStatus,
    Tier,
    can_transition,
)
from dispatch.ladder import (
    CALL_DEADLINES,
    Step,
    after_call,
    after_missed,
    after_sms_failed,
    plan_deadlines,
    visit_deadline,
)
from dispatch.models import AccessLog, CallAttempt, Callback, Lead, LeadDeadline, LeadEvent, SmsMessage, Visit
from dispatch.sms import QUEUED, Gateway, GatewayError, GatewayRejected, Outgoing, active_templates, queue_sms
from dispatch.tiering import Policy, TierDecision, active_policy
from dispatch.validation import CENTER_TZ, mask_phone
from dispatch.visits import OPEN_VISIT, open_visit, request_visit, visit_still_required
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, NotFound, ValidationFailed

ACTIVE = (LeadStatus.tiered, LeadStatus.working)
PENDING = DeadlineState.pending.value


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(CENTER_TZ).isoformat() if t else None


def _money(v: Decimal | None) -> float | None:
    return None if v is None else float(v)


def _event(session: Session, lead_id: int, actor: str, kind: str, data: dict) -> None:
    session.add(LeadEvent(lead_id=lead_id, actor=actor, kind=kind, data=data, at=clock.now()))


def lock_lead(session: Session, lead_id: int) -> Lead:
    """The lead, locked for this unit of work (center actions on one lead run one at a time)."""
    lead = session.execute(select(Lead).where(Lead.id == lead_id).with_for_update()
                           .execution_options(populate_existing=True)).scalar()
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    return lead


def _require(lead: Lead, action: str) -> None:
    if LeadStatus(lead.status) not in ACTION_STATUSES[action]:
        raise Conflict(f"lead {lead.id} is {lead.status}: it cannot be {action}ed now"
                       if action != "tier" else f"lead {lead.id} is {lead.status}: its tier cannot change now")


def _move(lead: Lead, to: LeadStatus) -> None:
    if not can_transition(lead.status, to):
        raise Conflict(f"lead {lead.id} is {lead.status}; it cannot become {to}")
    lead.status = to


def _touch(lead: Lead) -> None:
    lead.updated_at = clock.now()


# ---------------------------------------------------------------- deadlines (rows, not timers)
def write_deadlines(session: Session, lead_id: int, plan: dict[str, datetime], *, replace: bool = False) -> None:
    """Insert deadline rows; `replace` gives a row of the same name that was not met a new due time
    (pending again: a new promise; the miss stays in the audit trail)."""
    if not plan:
        return
    stmt = insert(LeadDeadline).values([{"lead_id": lead_id, "name": n, "due_at": t, "state": PENDING}
                                        for n, t in plan.items()])
    if replace:
        stmt = stmt.on_conflict_do_update(
            index_elements=["lead_id", "name"],
            set_={"due_at": stmt.excluded.due_at, "state": PENDING, "acted_at": None, "met_at": None},
            where=LeadDeadline.state != DeadlineState.met.value)
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=["lead_id", "name"])
    session.execute(stmt)


def mark_met(session: Session, lead_id: int, name: str, at: datetime | None = None) -> bool:
    """The step named `name` happened: a pending deadline becomes `met` (True); a missed one only
    records when it was done after all (False)."""
    at = at or clock.now()
    done = session.execute(update(LeadDeadline).where(
        LeadDeadline.lead_id == lead_id, LeadDeadline.name == name, LeadDeadline.state == PENDING)
        .values(state=DeadlineState.met.value, met_at=at)).rowcount
    if not done:
        session.execute(update(LeadDeadline).where(
            LeadDeadline.lead_id == lead_id, LeadDeadline.name == name,
            LeadDeadline.state == DeadlineState.missed.value, LeadDeadline.met_at.is_(None)).values(met_at=at))
    return bool(done)


def cancel_deadlines(session: Session, lead_id: int, names: tuple[str, ...] | None = None) -> list[str]:
    """Pending deadlines that no longer apply (all, or those named) → cancelled; their names."""
    q = update(LeadDeadline).where(LeadDeadline.lead_id == lead_id, LeadDeadline.state == PENDING)
    if names is not None:
        q = q.where(LeadDeadline.name.in_(names))
    return list(session.execute(q.values(state=DeadlineState.cancelled.value).returning(LeadDeadline.name))
                .scalars())


def deadlines_of(session: Session, lead_id: int) -> list[LeadDeadline]:
    return list(session.execute(select(LeadDeadline).where(LeadDeadline.lead_id == lead_id)
                                .order_by(LeadDeadline.due_at, LeadDeadline.name)
                                .execution_options(populate_existing=True)).scalars())


# ---------------------------------------------------------------- starting the ladder (at tiering)
def start_ladder(session: Session, lead: Lead, decision: TierDecision, policy: Policy, actor: str = "worker") -> None:
    """Deadline rows, the first warning SMS and the call queue for a freshly tiered lead. Rows are
    added to the unit of work (no round trip here): the flush writes a job's leads in a few
    multi-row INSERTs."""
    plan = plan_deadlines(decision, policy, lead.received_at)
    for name, due in plan.items():
        signed = name == "sign" and lead.signed_at is not None  # signed before the worker tiered it
        session.add(LeadDeadline(lead_id=lead.id, name=name, due_at=due,
                                 state=DeadlineState.met.value if signed else PENDING,
                                 met_at=lead.signed_at if signed else None))
    if Response.visit in decision.response and (due := plan.get("on_scene") or plan.get("visit")):
        with session.no_autoflush:  # the visit request_visit just made: give it its deadline
            session.execute(update(Visit).where(Visit.lead_id == lead.id, Visit.status.in_(OPEN_VISIT),
                                                Visit.due_at.is_(None)).values(due_at=due))
    lead.needs_call = Response.call in decision.response
    if Response.sms in decision.response:
        send_warning_sms(session, lead, actor, fresh=True)


def send_warning_sms(session: Session, lead: Lead, actor: str, *, fresh: bool = False) -> SmsMessage | int | None:
    """Queue the 短信劝阻 text for the lead's fraud type (one per lead: the key is the lead's).
    `fresh`: the lead was just tiered, so no message can exist yet and the row is simply added."""
    if not lead.phone:
        _event(session, lead.id, actor, "sms_skipped", {"reason": "no_phone"})
        return None
    body, key = active_templates().render(lead.fraud_type, lead.name), f"lead-{lead.id}-warning"
    if fresh:
        msg = SmsMessage(lead_id=lead.id, purpose=SmsPurpose.warning.value, to_phone=lead.phone, body=body,
                         idempotency_key=key)
        session.add(msg)
        session.info.setdefault(QUEUED, []).append(msg)
        _event(session, lead.id, actor, "sms_queued", {"key": key, "to": mask_phone(lead.phone)})
        return msg
    sms_id = queue_sms(session, to_phone=lead.phone, body=body, purpose=SmsPurpose.warning, idempotency_key=key,
                       lead_id=lead.id)
    _event(session, lead.id, actor, "sms_queued", {"key": key, "message_id": sms_id, "to": mask_phone(lead.phone)})
    return sms_id


# ---------------------------------------------------------------- escalation steps
def escalate_to_visit(session: Session, lead: Lead, rule: str, policy: Policy, actor: str) -> None:
    """A face-to-face visit becomes required (through `request_visit`), with its deadline row."""
    had = open_visit(session, lead.id)
    name, due = visit_deadline(policy, lead.tier or policy.default_tier, clock.now())
    visit = request_visit(session, lead, rule, actor=actor, due_at=None if had else due)
    if had is None:
        write_deadlines(session, lead.id, {name: due})
    if lead.status == LeadStatus.tiered:
        _move(lead, LeadStatus.working)
    _event(session, lead.id, actor, "escalated", {"rule": rule, "to": "visit", "visit_id": visit.id,
                                                  "already_open": had is not None,
                                                  "due_at": _iso(visit.due_at)})


def _raise_tier(session: Session, lead: Lead, tier: Tier, rule: str, actor: str) -> None:
    if lead.tier is not None and TIER_ORDER[Tier(lead.tier)] <= TIER_ORDER[tier]:
        return
    detail = dict(lead.tier_detail or {})
    detail.setdefault("policy", {"tier": detail.get("tier"), "response": detail.get("response", [])})
    detail["tier"] = tier.value
    _event(session, lead.id, actor, "tier_raised", {"from": lead.tier, "to": tier.value, "rule": rule})
    lead.tier, lead.tier_detail = tier.value, detail


def _stop_payment(session: Session, lead: Lead, rule: str, actor: str) -> None:
    """止付 and 案件跟进: the person says the money is gone."""
    if Flag.stop_payment not in lead.flags:
        lead.flags = [*lead.flags, Flag.stop_payment.value]
    _event(session, lead.id, actor, "stop_payment", {"rule": rule})
    _event(session, lead.id, actor, "case_follow_up", {"rule": rule})


def _return_to_center(session: Session, lead: Lead, rule: str, actor: str) -> None:
    lead.needs_call = False
    cancel_deadlines(session, lead.id, CALL_DEADLINES)
    _event(session, lead.id, actor, "returned_to_center", {"rule": rule})


def _apply(session: Session, lead: Lead, steps: list[Step], policy: Policy, actor: str, note: str | None) -> None:
    for step in steps:
        match step.kind:
            case "visit":
                escalate_to_visit(session, lead, step.rule, policy, actor)
            case "center":
                _return_to_center(session, lead, step.rule, actor)
            case "close":
                close_lead(session, lead, step.outcome, actor=actor, note=note, policy=policy, rule=step.rule)
            case "raise_tier":
                _raise_tier(session, lead, step.tier, step.rule, actor)
                _stop_payment(session, lead, step.rule, actor)
            case "call":
                _add_call(session, lead, step.rule, policy, actor)


def _add_call(session: Session, lead: Lead, rule: str, policy: Policy, actor: str) -> None:
    lead.needs_call = True
    write_deadlines(session, lead.id, {"first_call": clock.now() + policy.ladder.sms_failed_call_within})
    _event(session, lead.id, actor, "escalated", {"rule": rule, "to": "call"})


# ---------------------------------------------------------------- center actions
def sign_lead(session: Session, lead_id: int, who: Principal) -> Lead:
    """签收: the center takes the lead on."""
    lead = lock_lead(session, lead_id)
    _require(lead, "sign")
    if lead.signed_at is not None:
        raise Conflict(f"lead {lead_id} was signed already by {lead.signed_by}")
    lead.signed_at, lead.signed_by = clock.now(), who.name
    in_time = mark_met(session, lead_id, "sign", lead.signed_at)
    _touch(lead)
    _event(session, lead_id, who.actor, "signed", {"in_time": in_time})
    return lead


def override_tier(session: Session, lead_id: int, tier: Tier, reason: str, who: Principal, policy: Policy) -> Lead:
    """The center sets the tier (with a reason): the new tier's response, and its deadlines counted
    from now (a sign deadline not yet met keeps counting from receipt)."""
    lead = lock_lead(session, lead_id)
    _require(lead, "tier")
    if lead.tier == tier:
        raise Conflict(f"lead {lead_id} is {tier} already")
    now, spec = clock.now(), policy.tiers[tier]
    visit = open_visit(session, lead_id)
    response = [r for r in Response if r in spec.response or (r == Response.visit and visit is not None)]
    plan = {d.name: (lead.received_at if d.name == "sign" else now) + d.after for d in spec.deadlines
            if d.if_response is None or d.if_response in response}
    connected = session.execute(select(CallAttempt.id).where(CallAttempt.lead_id == lead_id,
                                                             CallAttempt.result == CallResult.connected)).first()
    if tier in policy.escalation.no_connection_tiers and Response.call in response and not connected:
        plan["connected_call"] = now + timedelta(minutes=policy.escalation.no_connection_minutes)
    if lead.signed_at is not None:
        plan.pop("sign", None)
    stale = [d.name for d in deadlines_of(session, lead_id)
             if d.state == PENDING and d.name not in plan and d.name != "callback"]
    if stale:
        cancel_deadlines(session, lead_id, tuple(stale))
    write_deadlines(session, lead_id, plan, replace=True)
    old = lead.tier
    detail = dict(lead.tier_detail or {})
    detail.setdefault("policy", {"tier": detail.get("tier"), "response": detail.get("response", [])})
    detail.update(tier=tier.value, response=[r.value for r in response],
                  deadlines={k: _iso(v) for k, v in plan.items()},
                  override={"from": old, "to": tier.value, "reason": reason, "by": who.name, "at": _iso(now)})
    lead.tier, lead.tier_detail = tier.value, detail
    lead.needs_call = Response.call in response and not connected
    _touch(lead)
    _event(session, lead_id, who.actor, "tier_overridden",
           {"from": old, "to": tier.value, "reason": reason, "deadlines": detail["deadlines"], "cancelled": stale})
    if Response.visit in spec.response and visit is None:
        escalate_to_visit(session, lead, "center_override", policy, who.actor)
    return lead


def transfer_lead(session: Session, lead_id: int, to: str, reason: str, who: Principal) -> Lead:
    """移交 to another unit: no more work here."""
    lead = lock_lead(session, lead_id)
    _move(lead, LeadStatus.transferred)
    lead.transfer_to, lead.transfer_reason, lead.needs_call = to, reason, False
    cancelled = cancel_deadlines(session, lead_id)
    _cancel_waiting_visit(session, lead_id)
    _touch(lead)
    _event(session, lead_id, who.actor, "transferred", {"to": to, "reason": reason, "cancelled": cancelled})
    return lead


def _cancel_waiting_visit(session: Session, lead_id: int) -> None:
    """A visit no squad has taken yet is no longer needed; one a squad works is field dispatch's."""
    visit = open_visit(session, lead_id)
    if visit is not None and visit.status == "waiting":
        visit.status = "cancelled"
        _event(session, lead_id, "system", "visit_cancelled", {"visit_id": visit.id})


def close_lead(session: Session, lead: Lead, outcome: Outcome | str, *, actor: str, note: str | None = None,
               loss_cny: Decimal | None = None, saved_cny: Decimal | None = None,
               met_in_person: bool | None = None, policy: Policy | None = None, rule: str | None = None) -> Lead:
    """Close a lead with its outcome (and amounts); pending deadlines are cancelled and the
    callback (回访) is scheduled. The one way a lead closes: the center, a dissuading call, a
    completed visit (field dispatch). 409 when the status does not allow it."""
    policy = policy or active_policy()
    outcome = Outcome(outcome)
    _move(lead, LeadStatus.closed)
    now = clock.now()
    lead.outcome, lead.closed_at, lead.close_note, lead.needs_call = outcome.value, now, note, False
    if loss_cny is not None:
        lead.loss_cny = loss_cny
    if saved_cny is not None:
        lead.saved_cny = saved_cny
    cancelled = cancel_deadlines(session, lead.id)
    _cancel_waiting_visit(session, lead.id)
    callback_due = None
    if outcome.value in policy.ladder.callback_outcomes:
        callback_due = now + policy.ladder.callback_delay(lead.tier)
        session.add(Callback(lead_id=lead.id, due_at=callback_due))
        session.execute(insert(LeadDeadline).values(lead_id=lead.id, name="callback", due_at=callback_due,
                                                    state=PENDING).on_conflict_do_update(
            index_elements=["lead_id", "name"],
            set_={"due_at": callback_due, "state": PENDING, "met_at": None, "acted_at": None}))
    _touch(lead)
    _event(session, lead.id, actor, "closed", {
        "outcome": outcome.value, "note": note, "loss_cny": _money(loss_cny), "saved_cny": _money(saved_cny),
        "met_in_person": met_in_person, "rule": rule, "callback_due": _iso(callback_due), "cancelled": cancelled})
    return lead


# ---------------------------------------------------------------- calls (电话劝阻)
def record_call(session: Session, lead_id: int, result: CallResult, outcome: Outcome | None, note: str | None,
                who: Principal, policy: Policy) -> tuple[CallAttempt, list[Step]]:
    """One operator call and the ladder's answer to it."""
    lead = lock_lead(session, lead_id)
    _require(lead, "call")
    if outcome is not None and result != CallResult.connected:
        raise ValidationFailed([{"field": "outcome", "message": "only a connected call has an outcome"}])
    now = clock.now()
    attempt = CallAttempt(lead_id=lead_id, at=now, actor=who.name, result=result.value,
                          outcome=outcome.value if outcome else None, note=note)
    session.add(attempt)
    session.flush()
    mark_met(session, lead_id, "first_call", now)
    if result == CallResult.connected:
        mark_met(session, lead_id, "connected_call", now)
    failed = session.execute(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.lead_id == lead_id, CallAttempt.result.in_(policy.ladder.failed_results))).scalar_one()
    placed = lead.in_jurisdiction is True and lead.placed_by in ("location", "residence")
    steps, keep_calling = after_call(policy, tier=lead.tier or policy.default_tier, result=result, outcome=outcome,
                                     failed_calls=failed, placed=placed,
                                     visit_required=visit_still_required(session, lead_id))
    if lead.status == LeadStatus.tiered:
        _move(lead, LeadStatus.working)
    lead.needs_call = keep_calling
    if not keep_calling:
        cancel_deadlines(session, lead_id, ("connected_call",))
    _touch(lead)
    _event(session, lead_id, who.actor, "call", {"call_id": attempt.id, "result": result.value,
                                                 "outcome": attempt.outcome, "note": note, "failed_calls": failed,
                                                 "rules": [s.rule for s in steps]})
    _apply(session, lead, steps, policy, who.actor, note)
    return attempt, steps


def call_queue(session: Session, who: Principal, limit: int) -> list[dict]:
    """Leads waiting for a call, most urgent pending deadline first. Operators dial, so the full
    phone is shown (center roles only) and each listed lead's read is written to access_log."""
    next_due = (select(func.min(LeadDeadline.due_at)).where(LeadDeadline.lead_id == Lead.id,
                                                            LeadDeadline.state == PENDING)
                .correlate(Lead).scalar_subquery())
    rows = session.execute(select(Lead, next_due.label("next_due"))
                           .where(Lead.needs_call, Lead.status.in_([s.value for s in ACTIVE]))
                           .order_by(next_due.asc().nulls_last(), Lead.id).limit(limit)).all()
    ids = [lead.id for lead, _ in rows]
    soonest: dict[int, LeadDeadline] = {}
    for d in session.execute(select(LeadDeadline).where(LeadDeadline.lead_id.in_(ids), LeadDeadline.state == PENDING)
                             .order_by(LeadDeadline.due_at)).scalars():
        soonest.setdefault(d.lead_id, d)
    stats = {r.lead_id: r for r in session.execute(
        select(CallAttempt.lead_id, func.count().label("calls"),
               func.count().filter(CallAttempt.result != CallResult.connected).label("failed"),
               func.max(CallAttempt.at).label("last_at"))
        .where(CallAttempt.lead_id.in_(ids)).group_by(CallAttempt.lead_id))}
    items = []
    for lead, _due in rows:
        d, s = soonest.get(lead.id), stats.get(lead.id)
        items.append({
            "id": lead.id, "tier": lead.tier, "status": lead.status, "warning_type": lead.warning_type,
            "fraud_type": lead.fraud_type, "risk_level": lead.risk_level, "received_at": _iso(lead.received_at),
            "subject": {"phone": lead.phone, "phone_masked": mask_phone(lead.phone), "name": lead.name,
                        "residency": lead.residency},
            "beat_code": lead.beat_code, "street_code": lead.street_code, "flags": list(lead.flags),
            "next_deadline": {"name": d.name, "due_at": _iso(d.due_at)} if d else None,
            "calls": s.calls if s else 0, "failed_calls": s.failed if s else 0,
            "last_call_at": _iso(s.last_at) if s else None})
        session.add(AccessLog(actor=who.name, role=who.role, lead_id=lead.id, what="calls.queue"))
    return items


# ---------------------------------------------------------------- callbacks (回访)
def record_callback(session: Session, lead_id: int, result: CallbackResult, loss_cny: Decimal | None,
                    note: str | None, who: Principal, policy: Policy) -> Callback:
    """The callback's result; `defrauded` records the loss and reopens the lead for follow-up
    (stop payment, a visit)."""
    lead = lock_lead(session, lead_id)
    if loss_cny is not None and result != CallbackResult.defrauded:
        raise ValidationFailed([{"field": "loss_cny", "message": "a loss goes with result `defrauded` only"}])
    cb = session.execute(select(Callback).where(Callback.lead_id == lead_id, Callback.done_at.is_(None))
                         .order_by(Callback.due_at).limit(1).with_for_update()).scalar()
    if cb is None:
        raise Conflict(f"lead {lead_id} has no callback pending")
    _require(lead, "callback")
    now = clock.now()
    cb.done_at, cb.actor, cb.result, cb.loss_cny, cb.note = now, who.name, result.value, loss_cny, note
    mark_met(session, lead_id, "callback", now)
    _event(session, lead_id, who.actor, "callback", {"callback_id": cb.id, "result": result.value,
                                                     "loss_cny": _money(loss_cny), "note": note})
    if result == CallbackResult.defrauded:
        if loss_cny is not None:
            lead.loss_cny = loss_cny
        previous = lead.outcome
        _move(lead, LeadStatus.working)
        lead.outcome, lead.closed_at = None, None
        _event(session, lead_id, who.actor, "reopened", {"rule": "callback_defrauded", "previous_outcome": previous,
                                                         "loss_cny": _money(loss_cny)})
        _stop_payment(session, lead, "callback_defrauded", who.actor)
        escalate_to_visit(session, lead, "callback_defrauded", policy, who.actor)
    _touch(lead)
    return cb


def callbacks_due(session: Session, who: Principal, limit: int, now: datetime | None = None) -> list[dict]:
    """Callbacks due by now, oldest first; the phone in full for the caller, each read audited."""
    now = now or clock.now()
    rows = session.execute(select(Callback, Lead).join(Lead, Lead.id == Callback.lead_id)
                           .where(Callback.done_at.is_(None), Callback.due_at <= now)
                           .order_by(Callback.due_at, Callback.id).limit(limit)).all()
    out = []
    for cb, lead in rows:
        out.append({"callback_id": cb.id, "lead_id": lead.id, "due_at": _iso(cb.due_at), "tier": lead.tier,
                    "status": lead.status, "outcome": lead.outcome, "closed_at": _iso(lead.closed_at),
                    "fraud_type": lead.fraud_type,
                    "subject": {"phone": lead.phone, "phone_masked": mask_phone(lead.phone), "name": lead.name,
                                "residency": lead.residency}})
        session.add(AccessLog(actor=who.name, role=who.role, lead_id=lead.id, what="callbacks.due"))
    return out


# ---------------------------------------------------------------- the sweep (workers)
def sweep_due(session: Session, now: datetime, policy: Policy, limit: int) -> int:
    """Act on up to `limit` due deadlines: each becomes `missed` with a `deadline_missed` event and
    its escalation (P0/P1 without a connected call → face-to-face). Rows are claimed with
    FOR UPDATE SKIP LOCKED in the UPDATE itself, so two workers never act on the same row."""
    claim = (select(LeadDeadline.id).where(LeadDeadline.state == PENDING, LeadDeadline.due_at <= now)
             .order_by(LeadDeadline.due_at).limit(limit).with_for_update(skip_locked=True))
    missed = session.execute(update(LeadDeadline).where(LeadDeadline.id.in_(claim.scalar_subquery()))
                             .values(state=DeadlineState.missed.value, acted_at=now)
                             .returning(LeadDeadline.lead_id, LeadDeadline.name, LeadDeadline.due_at)).all()
    if not missed:
        return 0
    tiers = dict(session.execute(select(Lead.id, Lead.tier).where(Lead.id.in_({m.lead_id for m in missed}))).all())
    steps = {(m.lead_id, m.name): after_missed(policy, m.name, tiers.get(m.lead_id)) for m in missed}
    session.execute(insert(LeadEvent), [
        {"lead_id": m.lead_id, "actor": "sweep", "kind": "deadline_missed", "at": now,
         "data": {"name": m.name, "due_at": _iso(m.due_at),
                  "rule": s.rule if (s := steps[(m.lead_id, m.name)]) else None,
                  "step": s.kind if s else None}} for m in missed])
    for (lead_id, _name), step in sorted(steps.items()):
        if step is None:
            continue
        lead = lock_lead(session, lead_id)
        if lead.status in ACTIVE:
            _apply(session, lead, [step], policy, "sweep", None)
    return len(missed)


# ---------------------------------------------------------------- SMS outcomes
def deliver_sms(session: Session, message_id: int, gateway: Gateway, policy: Policy, max_attempts: int) -> str:
    """Hand one pending SMS to the gateway → sent | retry | failed | skipped (not pending, or
    another worker holds it). The caller commits, then lets rq retry on `retry`."""
    msg = session.execute(select(SmsMessage).where(SmsMessage.id == message_id).with_for_update(skip_locked=True)
                          .execution_options(populate_existing=True)).scalar()
    if msg is None or msg.status != SmsStatus.pending:
        return "skipped"
    msg.attempts += 1
    try:
        gateway_id = gateway.send(Outgoing(msg.to_phone, msg.body, msg.idempotency_key, msg.purpose))
    except (GatewayError, GatewayRejected) as exc:
        msg.error = str(exc)[:500]
        if isinstance(exc, GatewayError) and msg.attempts < max_attempts:
            return "retry"
        msg.status = SmsStatus.failed.value
        sms_failed(session, msg, policy, "sms_send_failed")
        return "failed"
    msg.status, msg.sent_at, msg.gateway_message_id, msg.error = SmsStatus.sent.value, clock.now(), gateway_id, None
    if msg.lead_id is not None and msg.purpose == SmsPurpose.warning:
        mark_met(session, msg.lead_id, "sms", msg.sent_at)
        _event(session, msg.lead_id, "worker", "sms_sent", {"message_id": msg.id, "attempts": msg.attempts})
    return "sent"


def sms_failed(session: Session, msg: SmsMessage, policy: Policy, why: str) -> bool:
    """A warning SMS that did not reach the person: record it; P3 (policy: ladder.sms_failed_to_call) → a call."""
    if msg.lead_id is None or msg.purpose != SmsPurpose.warning:
        return False
    lead = lock_lead(session, msg.lead_id)
    _event(session, lead.id, "worker", "sms_failed", {"message_id": msg.id, "why": why, "error": msg.error})
    step = after_sms_failed(policy, lead.tier)
    if step is None or lead.status not in ACTIVE or lead.needs_call:
        return False
    _apply(session, lead, [step], policy, "worker", None)
    return True


def apply_receipt(session: Session, gateway_message_id: str, status: SmsStatus, policy: Policy) -> tuple[bool, bool]:
    """A delivery receipt → (changed, escalated). A receipt for a message already final is ignored."""
    msg = session.execute(select(SmsMessage).where(SmsMessage.gateway_message_id == gateway_message_id)
                          .with_for_update()).scalar()
    if msg is None:
        raise NotFound(f"no SMS with message_id {gateway_message_id!r}")
    if msg.status in (SmsStatus.delivered, SmsStatus.failed):
        return False, False
    msg.status, msg.receipt_at = status.value, clock.now()
    if status == SmsStatus.failed:
        msg.error = "receipt: failed"
        return True, sms_failed(session, msg, policy, "receipt_failed")
    if msg.lead_id is not None:
        _event(session, msg.lead_id, "sms-gateway", "sms_delivered", {"message_id": msg.id})
    return True, False


def lead_state(session: Session, lead: Lead) -> dict:
    """What a center action answers: the lead's status, tier and deadlines after it."""
    return {"id": lead.id, "status": lead.status, "tier": lead.tier, "signed_at": _iso(lead.signed_at),
            "signed_by": lead.signed_by, "outcome": lead.outcome, "closed_at": _iso(lead.closed_at),
            "transfer_to": lead.transfer_to, "needs_call": lead.needs_call, "flags": list(lead.flags),
            "loss_cny": _money(lead.loss_cny), "saved_cny": _money(lead.saved_cny),
            "deadlines": [{"name": d.name, "due_at": _iso(d.due_at), "state": d.state, "met_at": _iso(d.met_at)}
                          for d in deadlines_of(session, lead.id)]}
