"""电话劝阻: operators' calls, their results, and the call queue."""
from __future__ import annotations

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from dispatch import outbox
from dispatch.access import audited, owned_leads
from dispatch.enums import CallChannel, CallResult, LeadStatus, Outcome
from dispatch.identity import mask_phone
from dispatch.ladder import deadlines
from dispatch.ladder.rules import Step, after_call
from dispatch.ladder.service import lock_lead, start_working, touch
from dispatch.models import CallAttempt, Lead, LeadDeadline
from dispatch.policy import Policy
from dispatch.states import ACTIVE_LEAD, require
from dispatch.timeline import record
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, NotFound, ValidationFailed


def record_call(session: Session, lead_id: int, result: CallResult, outcome: Outcome | None, note: str | None,
                who: Principal, policy: Policy, visit_required) -> tuple[Lead, CallAttempt, list[Step]]:
    """One operator call → the lead, the call, and the steps the ladder takes after it (a flow
    applies them). `visit_required(lead_id) -> bool`: is a face-to-face visit asked for and not done
    (then a dissuading call does not close the lead)."""
    lead = lock_lead(session, lead_id)
    require(lead, "call")
    if outcome is not None and result != CallResult.connected:
        raise ValidationFailed([{"field": "outcome", "message": "only a connected call has an outcome"}])
    now = clock.now()
    attempt = CallAttempt(lead_id=lead_id, at=now, actor=who.name, result=result.value,
                          outcome=outcome.value if outcome else None, note=note)
    session.add(attempt)
    session.flush()
    deadlines.mark_met(session, lead_id, "first_call", now)
    if result == CallResult.connected:
        deadlines.mark_met(session, lead_id, "connected_call", now)
    failed = session.execute(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.lead_id == lead_id, CallAttempt.result.in_(policy.ladder.failed_results))).scalar_one()
    placed = lead.in_jurisdiction is True and lead.placed_by in ("location", "residence")
    steps, keep_calling = after_call(policy, tier=lead.tier or policy.default_tier, result=result, outcome=outcome,
                                     failed_calls=failed, placed=placed, visit_required=visit_required(lead_id))
    start_working(lead)
    lead.needs_call = keep_calling
    lead.claimed_by = lead.claimed_until = None  # the desk's claim ends with the call
    if not keep_calling:
        deadlines.cancel_deadlines(session, lead_id, ("connected_call",))
    touch(session, lead)
    record(session, lead_id, who.actor, "call", {"call_id": attempt.id, "result": result.value,
                                                 "outcome": attempt.outcome, "note": note, "failed_calls": failed,
                                                 "rules": [s.rule for s in steps], "policy_version": policy.version})
    return lead, attempt, steps


def _next_due():
    return (select(func.min(LeadDeadline.due_at)).where(LeadDeadline.lead_id == Lead.id,
                                                        LeadDeadline.state == deadlines.PENDING)
            .correlate(Lead).scalar_subquery())


def _waiting_for_call():
    # A transferred lead waits for a call only when it was handed outside the city with its urgent
    # first call still owed (a transfer otherwise clears needs_call).
    return (Lead.needs_call, Lead.status.in_([*(s.value for s in ACTIVE_LEAD), LeadStatus.transferred.value]))


def call_queue(session: Session, who: Principal, limit: int, policy: Policy, lead_ids: list[int] | None = None
               ) -> list[dict]:
    """Leads waiting for a call, most urgent pending deadline first. Operators dial, so the full
    phone is shown (center roles only) and each listed lead's read is written to access_log."""
    next_due = _next_due()
    q = select(Lead, next_due.label("next_due")).where(*_waiting_for_call(), owned_leads(who))
    if lead_ids is not None:
        q = q.where(Lead.id.in_(lead_ids))
    rows = session.execute(q.order_by(next_due.asc().nulls_last(), Lead.id).limit(limit)).all()
    ids = [lead.id for lead, _ in rows]
    soonest: dict[int, LeadDeadline] = {}
    for d in session.execute(select(LeadDeadline).where(LeadDeadline.lead_id.in_(ids),
                                                        LeadDeadline.state == deadlines.PENDING)
                             .order_by(LeadDeadline.due_at)).scalars():
        soonest.setdefault(d.lead_id, d)
    stats = {r.lead_id: r for r in session.execute(
        select(CallAttempt.lead_id, func.count().label("calls"),
               func.count().filter(CallAttempt.result != CallResult.connected).label("failed"),
               func.max(CallAttempt.at).label("last_at"),
               func.max(CallAttempt.at).filter(CallAttempt.result != CallResult.connected).label("last_failed"))
        .where(CallAttempt.lead_id.in_(ids)).group_by(CallAttempt.lead_id))}
    now, retry = clock.now(), policy.shift.call_retry_after
    items = []
    for lead, _due in rows:
        d, s = soonest.get(lead.id), stats.get(lead.id)
        claimed = lead.claimed_until is not None and lead.claimed_until > now
        items.append({
            "id": lead.id, "tier": lead.tier, "status": lead.status, "warning_type": lead.warning_type,
            "fraud_type": lead.fraud_type, "risk_level": lead.risk_level, "received_at": clock.iso(lead.received_at),
            "amount_cny": float(lead.amount_cny) if lead.amount_cny is not None else None,
            "subject": {"phone": lead.phone, "phone_masked": mask_phone(lead.phone), "name": lead.name,
                        "residency": lead.residency},
            "beat_code": lead.beat_code, "street_code": lead.street_code, "flags": list(lead.flags),
            "next_deadline": {"name": d.name, "due_at": clock.iso(d.due_at)} if d else None,
            "calls": s.calls if s else 0, "failed_calls": s.failed if s else 0,
            "last_call_at": clock.iso(s.last_at) if s else None,
            "next_call_at": clock.iso(s.last_failed + retry) if s and s.last_failed else None,
            "claimed_by": lead.claimed_by if claimed else None,
            "claimed_until": clock.iso(lead.claimed_until) if claimed else None})
        audited(session, who, lead.id, "calls.queue")
    return items


def claim_next(session: Session, who: Principal, policy: Policy) -> dict:
    """The desk's 下一条: the operator's own claim if it still runs, else the most urgent lead in the
    call queue that nobody else holds and whose retry is due — claimed for `desk.claim_for` (a second
    operator never gets it meanwhile; SKIP LOCKED: two operators pressing at once get two leads)."""
    now, shift = clock.now(), policy.shift
    recent_fail = (select(CallAttempt.id).where(CallAttempt.lead_id == Lead.id, CallAttempt.result != CallResult.connected,
                                                CallAttempt.at > now - shift.call_retry_after)
                   .correlate(Lead).exists())
    mine = func.coalesce(and_(Lead.claimed_by == who.name, Lead.claimed_until > now), False)
    free = or_(Lead.claimed_until.is_(None), Lead.claimed_until <= now, Lead.claimed_by == who.name)
    lead = session.execute(select(Lead).where(*_waiting_for_call(), owned_leads(who), free, or_(mine, ~recent_fail))
                           .order_by(mine.desc(), _next_due().asc().nulls_last(), Lead.id)
                           .limit(1).with_for_update(skip_locked=True, key_share=True)).scalar()
    if lead is None:
        return {"item": None, "claimed_until": None}
    lead.claimed_by, lead.claimed_until = who.name, now + shift.claim_for
    record(session, lead.id, who.actor, "claimed", {"until": clock.iso(lead.claimed_until)})
    outbox.board(session, "lead.updated", {"lead_id": lead.id, "status": lead.status, "tier": lead.tier,
                                           "claimed_by": who.name}, district=lead.district_code)
    session.flush()
    item = call_queue(session, who, 1, policy, [lead.id])
    return {"item": item[0] if item else None, "claimed_until": clock.iso(lead.claimed_until)}


def release_claim(session: Session, lead_id: int, who: Principal) -> dict:
    """The operator gives the lead back to the queue (only their own claim; a commander may free any)."""
    lead = lock_lead(session, lead_id)
    now = clock.now()
    held = lead.claimed_until is not None and lead.claimed_until > now
    if held and lead.claimed_by != who.name and who.role not in ("admin", "commander"):
        raise Conflict(f"lead {lead_id} is claimed by {lead.claimed_by}")
    if held:
        record(session, lead.id, who.actor, "claim_released", {"claimed_by": lead.claimed_by})
        outbox.board(session, "lead.updated", {"lead_id": lead.id, "status": lead.status, "tier": lead.tier,
                                               "claimed_by": None}, district=lead.district_code)
    lead.claimed_by = lead.claimed_until = None
    return {"lead_id": lead_id, "claimed_by": None, "claimed_until": None}


# ---------------------------------------------------------------- calls whose result came from elsewhere
def describe_call(attempt: CallAttempt, channel: CallChannel, *, duration_s: int | None = None,
                  sip_status: int | None = None, at=None, tags: list[str] | None = None,
                  external_id: str | None = None) -> CallAttempt:
    """How a recorded call's result came: the phone network (a dial: SIP status, seconds connected)
    or a robot caller (when it called, its labels, its own call id)."""
    attempt.channel, attempt.duration_s, attempt.sip_status = channel.value, duration_s, sip_status
    if at is not None:
        attempt.at = at
    attempt.tags, attempt.external_id = tags, external_id
    return attempt


def record_outcome(session: Session, call_id: int, outcome: Outcome, note: str | None, who: Principal,
                   policy: Policy, visit_required) -> tuple[Lead, CallAttempt, list[Step]]:
    """What the person said on a connected call whose result came from the phone network: the same
    call gets its outcome (the ladder sees one call, not two) and the ladder's steps after it."""
    found = session.get(CallAttempt, call_id)
    if found is None:
        raise NotFound(f"call {call_id} not found")
    lead = lock_lead(session, found.lead_id)
    attempt = session.execute(select(CallAttempt).where(CallAttempt.id == call_id).with_for_update()
                              .execution_options(populate_existing=True)).scalar_one()
    require(lead, "call")
    if attempt.result != CallResult.connected:
        raise Conflict(f"call {call_id} was {attempt.result}: only a connected call has an outcome")
    if attempt.outcome is not None:
        raise Conflict(f"call {call_id} already has the outcome {attempt.outcome}")
    attempt.outcome = outcome.value
    if note is not None:
        attempt.note = note
    failed = session.execute(select(func.count()).select_from(CallAttempt).where(
        CallAttempt.lead_id == lead.id, CallAttempt.result.in_(policy.ladder.failed_results))).scalar_one()
    placed = lead.in_jurisdiction is True and lead.placed_by in ("location", "residence")
    steps, _ = after_call(policy, tier=lead.tier or policy.default_tier, result=CallResult.connected,
                          outcome=outcome, failed_calls=failed, placed=placed, visit_required=visit_required(lead.id))
    start_working(lead)
    touch(session, lead)
    record(session, lead.id, who.actor, "call_outcome", {"call_id": call_id, "outcome": outcome.value, "note": note,
                                                        "rules": [s.rule for s in steps],
                                                        "policy_version": policy.version})
    return lead, attempt, steps
