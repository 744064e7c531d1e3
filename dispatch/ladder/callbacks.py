"""回访: the call some days after a lead closes, to confirm the person is safe and count losses.

One `callback` row per attempt. An attempt answered `not_reached` is not a 回访 done: the next
attempt is due `[callback] retry_after` later (a new row, `attempt` + 1, and the `callback`
deadline due again), up to `[callback] max_attempts`; after the last the 回访 stays not done.
回访率 = callbacks done / callbacks due (dispatch/outcomes/kpi.py)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlmodel import Session

from dispatch.access import audited, owned_leads
from dispatch.enums import CallbackResult, CallbackState
from dispatch.identity import mask_phone
from dispatch.ladder import deadlines
from dispatch.ladder.service import lock_lead, reopen, stop_payment, touch
from dispatch.models import Callback, Lead
from dispatch.policy import Policy
from dispatch.states import CALLBACK, require
from dispatch.timeline import record
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, ValidationFailed
from service.core.money import cny

REACHED = frozenset({CallbackResult.safe, CallbackResult.defrauded})  # a 回访 done


def state_of(cb: Callback) -> CallbackState:
    return CallbackState.done if cb.done_at is not None else CallbackState.due


def record_callback(session: Session, lead_id: int, result: CallbackResult, loss_cny: Decimal | None,
                    note: str | None, who: Principal, policy: Policy) -> tuple[Lead, Callback, Callback | None, bool]:
    """The attempt's result → (lead, the attempt, the next attempt when this one did not reach the
    person and attempts remain, whether the lead was reopened: `defrauded` records the loss and
    reopens it for follow-up — stop payment now, a visit through the flow)."""
    lead = lock_lead(session, lead_id)
    if loss_cny is not None and result != CallbackResult.defrauded:
        raise ValidationFailed([{"field": "loss_cny", "message": "a loss goes with result `defrauded` only"}])
    cb = session.execute(select(Callback).where(Callback.lead_id == lead_id, Callback.done_at.is_(None))
                         .order_by(Callback.due_at).limit(1).with_for_update()).scalar()
    if cb is None:
        raise Conflict(f"lead {lead_id} has no callback pending")
    require(lead, "callback")
    if not CALLBACK.can(state_of(cb), CallbackState.done):
        raise Conflict(f"callback {cb.id} is done already")
    now = clock.now()
    cb.done_at, cb.actor, cb.result, cb.loss_cny, cb.note = now, who.name, result.value, loss_cny, note
    deadlines.mark_met(session, lead_id, "callback", now)
    retry = None
    if result not in REACHED and cb.attempt < policy.callback.max_attempts:
        retry = Callback(lead_id=lead_id, due_at=now + policy.callback.retry_after, attempt=cb.attempt + 1)
        session.add(retry)
        deadlines.reset_deadline(session, lead_id, "callback", retry.due_at)
    record(session, lead_id, who.actor, "callback", {
        "callback_id": cb.id, "result": result.value, "loss_cny": cny(loss_cny), "note": note,
        "attempt": cb.attempt, "done": result in REACHED, "next_due_at": clock.iso(retry.due_at) if retry else None,
        "gave_up": result not in REACHED and retry is None})
    reopened = result == CallbackResult.defrauded
    if reopened:
        if loss_cny is not None:
            lead.loss_cny = loss_cny
        reopen(session, lead, "callback_defrauded", who.actor, loss_cny)
        stop_payment(session, lead, "callback_defrauded", who.actor)
    touch(session, lead)
    return lead, cb, retry, reopened


def callbacks_due(session: Session, who: Principal, limit: int, now: datetime | None = None) -> list[dict]:
    """Callbacks due by now, oldest first; the phone in full for the caller, each read audited."""
    now = now or clock.now()
    rows = session.execute(select(Callback, Lead).join(Lead, Lead.id == Callback.lead_id)
                           .where(Callback.done_at.is_(None), Callback.due_at <= now, owned_leads(who))
                           .order_by(Callback.due_at, Callback.id).limit(limit)).all()
    out = []
    for cb, lead in rows:
        out.append({"callback_id": cb.id, "lead_id": lead.id, "due_at": clock.iso(cb.due_at), "attempt": cb.attempt,
                    "tier": lead.tier,
                    "status": lead.status, "outcome": lead.outcome, "closed_at": clock.iso(lead.closed_at),
                    "fraud_type": lead.fraud_type,
                    "subject": {"phone": lead.phone, "phone_masked": mask_phone(lead.phone), "name": lead.name,
                                "residency": lead.residency}})
        audited(session, who, lead.id, "callbacks.due")
    return out
