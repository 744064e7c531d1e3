"""止付 as work, not a flag: a request to the bank (bank, account, amount) valid `valid_for` (48 h),
at most `max_requests` per lead (twice, the national rule); the bank's answer is due within
`answer_within` — a `stop_payment` deadline row, so an unanswered request is an alarm like any
missed step; what the bank held counts as saved (挽损) on the lead, and so in the KPIs."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlmodel import Session

from dispatch.enums import Flag
from dispatch.ladder import deadlines
from dispatch.ladder.service import lock_lead, touch
from dispatch.models import StopPaymentRequest
from dispatch.policy import Policy
from dispatch.timeline import record
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, NotFound
from service.core.money import cny

ANSWERS = ("frozen", "refused")


def public(r: StopPaymentRequest) -> dict:
    iso = clock.iso
    return {"id": r.id, "lead_id": r.lead_id, "seq": r.seq, "bank": r.bank, "account": r.account,
            "amount_cny": cny(r.amount_cny), "requested_by": r.requested_by, "requested_at": iso(r.requested_at),
            "expires_at": iso(r.expires_at), "answer_due_at": iso(r.answer_due_at), "status": r.status,
            "answered_at": iso(r.answered_at), "answered_by": r.answered_by, "saved_cny": cny(r.saved_cny),
            "note": r.note}


def request(session: Session, lead_id: int, bank: str, account: str, amount: Decimal | None, who: Principal,
            policy: Policy) -> StopPaymentRequest:
    lead = lock_lead(session, lead_id)
    sp = policy.stop_payment
    made = session.execute(select(func.count()).select_from(StopPaymentRequest)
                           .where(StopPaymentRequest.lead_id == lead_id)).scalar_one()
    if made >= sp.max_requests:
        raise Conflict(f"lead {lead_id} already has {made} stop-payment requests "
                       f"(at most {sp.max_requests}: stop_payment.max_requests)")
    now = clock.now()
    r = StopPaymentRequest(lead_id=lead_id, seq=made + 1, bank=bank, account=account, amount_cny=amount,
                           requested_by=who.name, requested_at=now, expires_at=now + sp.valid_for,
                           answer_due_at=now + sp.answer_within)
    session.add(r)
    session.flush()
    deadlines.reset_deadline(session, lead_id, "stop_payment", r.answer_due_at)
    if Flag.stop_payment not in lead.flags:
        lead.flags = [*lead.flags, Flag.stop_payment.value]
    record(session, lead_id, who.actor, "stop_payment_requested", {
        "request_id": r.id, "seq": r.seq, "bank": bank, "account": "****" + account[-4:],
        "amount_cny": cny(amount), "expires_at": clock.iso(r.expires_at), "answer_due_at": clock.iso(r.answer_due_at)})
    touch(session, lead)
    return r


def answer(session: Session, request_id: int, status: str, saved: Decimal | None, note: str | None,
           who: Principal) -> StopPaymentRequest:
    """The bank's answer: `frozen` (with what it held: saved on the lead) or `refused`."""
    r = session.execute(select(StopPaymentRequest).where(StopPaymentRequest.id == request_id)
                        .with_for_update()).scalar()
    if r is None:
        raise NotFound(f"stop-payment request {request_id} not found")
    lead = lock_lead(session, r.lead_id)
    if r.status != "requested":
        raise Conflict(f"stop-payment request {request_id} is {r.status}")
    now = clock.now()
    r.status, r.answered_at, r.answered_by, r.note = status, now, who.name, note
    if status == "frozen" and saved is not None:
        r.saved_cny = saved
        lead.saved_cny = (lead.saved_cny or Decimal(0)) + saved
    deadlines.mark_met(session, lead.id, "stop_payment", now)
    record(session, lead.id, who.actor, "stop_payment_answered", {
        "request_id": r.id, "status": status, "saved_cny": cny(r.saved_cny), "note": note})
    touch(session, lead)
    return r


def lapse(session: Session, now: datetime) -> int:
    """Requests past their validity with no answer → lapsed (a second may be made)."""
    rows = session.execute(update(StopPaymentRequest).where(
        StopPaymentRequest.status == "requested", StopPaymentRequest.expires_at <= now)
        .values(status="lapsed").returning(StopPaymentRequest.lead_id, StopPaymentRequest.id)).all()
    for lead_id, rid in rows:
        record(session, lead_id, "sweep", "stop_payment_lapsed", {"request_id": rid})
    return len(rows)


def requests_of(session: Session, lead_id: int) -> list[StopPaymentRequest]:
    return list(session.execute(select(StopPaymentRequest).where(StopPaymentRequest.lead_id == lead_id)
                                .order_by(StopPaymentRequest.seq)).scalars())
