"""电话劝阻: operators' calls, their results, and the call queue."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlmodel import Session

from dispatch.access import audited
from dispatch.enums import CallResult, Outcome
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
from service.core.errors import ValidationFailed


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
    if not keep_calling:
        deadlines.cancel_deadlines(session, lead_id, ("connected_call",))
    touch(lead)
    record(session, lead_id, who.actor, "call", {"call_id": attempt.id, "result": result.value,
                                                 "outcome": attempt.outcome, "note": note, "failed_calls": failed,
                                                 "rules": [s.rule for s in steps], "policy_version": policy.version})
    return lead, attempt, steps


def call_queue(session: Session, who: Principal, limit: int) -> list[dict]:
    """Leads waiting for a call, most urgent pending deadline first. Operators dial, so the full
    phone is shown (center roles only) and each listed lead's read is written to access_log."""
    next_due = (select(func.min(LeadDeadline.due_at)).where(LeadDeadline.lead_id == Lead.id,
                                                            LeadDeadline.state == deadlines.PENDING)
                .correlate(Lead).scalar_subquery())
    rows = session.execute(select(Lead, next_due.label("next_due"))
                           .where(Lead.needs_call, Lead.status.in_([s.value for s in ACTIVE_LEAD]))
                           .order_by(next_due.asc().nulls_last(), Lead.id).limit(limit)).all()
    ids = [lead.id for lead, _ in rows]
    soonest: dict[int, LeadDeadline] = {}
    for d in session.execute(select(LeadDeadline).where(LeadDeadline.lead_id.in_(ids),
                                                        LeadDeadline.state == deadlines.PENDING)
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
            "fraud_type": lead.fraud_type, "risk_level": lead.risk_level, "received_at": clock.iso(lead.received_at),
            "subject": {"phone": lead.phone, "phone_masked": mask_phone(lead.phone), "name": lead.name,
                        "residency": lead.residency},
            "beat_code": lead.beat_code, "street_code": lead.street_code, "flags": list(lead.flags),
            "next_deadline": {"name": d.name, "due_at": clock.iso(d.due_at)} if d else None,
            "calls": s.calls if s else 0, "failed_calls": s.failed if s else 0,
            "last_call_at": clock.iso(s.last_at) if s else None})
        audited(session, who, lead.id, "calls.queue")
    return items
