"""The queue (GET /api/v1/queue): every open lead, most urgent first — tier, then time left to the
step it is on — with filters and keyset paging. Open = being worked (received, tiered, working),
or closed with its 回访 due; each with the person's "warned N times in 30 days, M visits". Read with
set-based queries whatever the number of open leads; the step of each comes from `dispatch.shift.steps`."""
from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, func, or_, select
from sqlmodel import Session

from dispatch.enums import CallResult
from dispatch.identity import mask_phone
from dispatch.models import Alarm, CallAttempt, Callback, Lead, LeadDeadline, Visit
from dispatch.person import fold_summaries, summary_query
from dispatch.policy import Policy
from dispatch.shift.steps import TIER_RANK, LeadFacts, current_step
from service.core import clock
from service.core.errors import ValidationFailed

WORKED = ("received", "tiered", "working")
VISIT_SHOWN = ("waiting", "offered", "assigned", "arrived", "failed")


@dataclass(frozen=True, slots=True)
class Filters:
    street: str | None = None
    beat: str | None = None
    tier: str | None = None
    status: str | None = None
    step: str | None = None
    leads: tuple[int, ...] = ()
    visible: object = None  # the caller's clause (dispatch.access.owned_leads); None: every lead


def _key(item: dict) -> tuple:
    due = item["_due"]
    return (TIER_RANK.get(item["tier"], 9), due is None, due.timestamp() if due else 0.0, item["id"])


def encode_cursor(key: tuple) -> str:
    rank, no_due, ts, lead_id = key
    return base64.urlsafe_b64encode(f"{rank}:{int(no_due)}:{ts!r}:{lead_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        rank, no_due, ts, lead_id = raw.split(":")
        return int(rank), bool(int(no_due)), float(ts), int(lead_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationFailed([{"field": "cursor", "message": "not a cursor this API gave out"}]) from None


def _open_leads(session: Session, f: Filters, now: datetime):
    callback_due = exists().where(Callback.lead_id == Lead.id, Callback.done_at.is_(None), Callback.due_at <= now)
    q = select(Lead.id, Lead.tier, Lead.status, Lead.signed_at, Lead.needs_call, Lead.received_at, Lead.warning_type,
               Lead.fraud_type, Lead.risk_level, Lead.street_code, Lead.beat_code, Lead.assigned_team, Lead.phone,
               Lead.name, Lead.claimed_by, Lead.claimed_until, Lead.amount_cny, Lead.person_id).where(
        or_(Lead.status.in_(WORKED), and_(Lead.status == "closed", callback_due)))
    for column, value in ((Lead.street_code, f.street), (Lead.beat_code, f.beat), (Lead.tier, f.tier),
                          (Lead.status, f.status)):
        if value is not None:
            q = q.where(column == value)
    if f.leads:
        q = q.where(Lead.id.in_(f.leads))
    if f.visible is not None:
        q = q.where(f.visible)
    return session.execute(q).all()


def queue_items(session: Session, policy: Policy, f: Filters, now: datetime | None = None) -> list[dict]:
    """Every open lead matching `f`, in queue order (masked: the queue is a list)."""
    now = now or clock.now()
    leads = _open_leads(session, f, now)
    if not leads:
        return []
    ids = [r.id for r in leads]
    deadlines: dict[int, dict[str, datetime]] = {}
    for lead_id, name, due in session.execute(
            select(LeadDeadline.lead_id, LeadDeadline.name, LeadDeadline.due_at).where(
                LeadDeadline.lead_id.in_(ids), or_(LeadDeadline.state == "pending",
                                                   and_(LeadDeadline.state == "missed", LeadDeadline.met_at.is_(None))),
                LeadDeadline.name != "callback")):
        deadlines.setdefault(lead_id, {})[name] = due
    for lead_id, due in session.execute(select(Callback.lead_id, func.min(Callback.due_at)).where(
            Callback.lead_id.in_(ids), Callback.done_at.is_(None)).group_by(Callback.lead_id)):
        deadlines.setdefault(lead_id, {})["callback"] = due
    calls = {r.lead_id: r for r in session.execute(
        select(CallAttempt.lead_id, func.count().label("calls"),
               func.max(CallAttempt.at).filter(CallAttempt.result != CallResult.connected).label("last_failed"))
        .where(CallAttempt.lead_id.in_(ids)).group_by(CallAttempt.lead_id))}
    visits = dict(session.execute(select(Visit.lead_id, Visit.status).where(
        Visit.lead_id.in_(ids), Visit.status.in_(VISIT_SHOWN)).order_by(Visit.lead_id, Visit.id)).all())
    alarms = dict(session.execute(select(Alarm.lead_id, func.count()).where(
        Alarm.lead_id.in_(ids), Alarm.acked_at.is_(None), Alarm.resolved_at.is_(None)).group_by(Alarm.lead_id)).all())
    person_ids = {r.person_id for r in leads if r.person_id is not None}
    people = fold_summaries(person_ids, session.execute(summary_query(person_ids, now)).all()) if person_ids else {}
    retry = policy.shift.call_retry_after
    items = []
    for r in leads:
        c = calls.get(r.id)
        cur = current_step(LeadFacts(status=r.status, signed=r.signed_at is not None, needs_call=r.needs_call,
                                     calls=c.calls if c else 0, last_failed_call_at=c.last_failed if c else None,
                                     visit_status=visits.get(r.id), open_deadlines=deadlines.get(r.id, {})), retry)
        if f.step is not None and cur.step != f.step:
            continue
        claimed = r.claimed_by if r.claimed_until is not None and r.claimed_until > now else None
        items.append({
            "id": r.id, "tier": r.tier, "status": r.status, "step": cur.step, "step_due_at": clock.iso(cur.due_at),
            "overdue": cur.due_at is not None and cur.due_at <= now,
            "steps": [{"step": s, "due_at": clock.iso(t)} for s, t in cur.open_steps],
            "received_at": clock.iso(r.received_at), "warning_type": r.warning_type, "fraud_type": r.fraud_type,
            "risk_level": r.risk_level, "amount_cny": float(r.amount_cny) if r.amount_cny is not None else None,
            "street_code": r.street_code, "beat_code": r.beat_code, "assigned_team": r.assigned_team,
            "visit_status": visits.get(r.id), "calls": c.calls if c else 0, "claimed_by": claimed,
            "alarms": alarms.get(r.id, 0), "subject": {"name": r.name, "phone": mask_phone(r.phone)},
            "person": people.get(r.person_id),
            "_due": cur.due_at})
    items.sort(key=_key)
    return items


def queue_page(session: Session, policy: Policy, f: Filters, limit: int, cursor: str | None) -> dict:
    items = queue_items(session, policy, f)
    counts: dict[str, int] = {}
    for it in items:
        counts[it["tier"] or "none"] = counts.get(it["tier"] or "none", 0) + 1
    if cursor:
        after = decode_cursor(cursor)
        items = [it for it in items if _key(it) > after]
    page = items[:limit]
    more = len(items) > limit
    nxt = encode_cursor(_key(page[-1])) if more and page else None
    for it in page:
        del it["_due"]
    return {"items": page, "next_cursor": nxt, "total": sum(counts.values()), "by_tier": counts,
            "at": clock.now_iso()}
