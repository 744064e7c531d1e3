"""Offering a visit to squads (派单): the best squad first, an offer pushed to every member's phone,
an SMS to whoever has no live socket, the next squad when one declines or lets it expire, and
back to the center after `max_squads`. Every status change follows `dispatch.states`; pushes and
SMS go on the unit of work's outbox and leave with its commit."""
from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import select
from sqlmodel import Session

from dispatch import metrics, outbox
from dispatch.enums import AssignmentStatus, LeadStatus, SmsPurpose, VisitStatus
from dispatch.field.matching import Choice, choose_squad, of_district, rank_squads
from dispatch.field.squads import FieldConfig, Member, adjacency, load_squads, member_phone, members, roster
from dispatch.identity import mask_phone
from dispatch.messages import queue_sms
from dispatch.models import Assignment, Lead, OfferDelivery, SmsMessage, Team, Visit
from dispatch.states import ASSIGNMENT, VISIT
from dispatch.timeline import record
from service.core import clock
from service.core.money import cny

A, V = AssignmentStatus, VisitStatus


# ---------------------------------------------------------------- shapes on the wire
def lead_brief(lead: Lead) -> dict:
    """What an offer tells a squad before it accepts: enough to decide and go, nothing more (masked)."""
    return {"id": lead.id, "tier": lead.tier, "fraud_type": lead.fraud_type, "warning_type": lead.warning_type,
            "risk_level": lead.risk_level, "beat_code": lead.beat_code, "street_code": lead.street_code,
            "lon": lead.lon, "lat": lead.lat, "subject": {"name": lead.name, "phone": mask_phone(lead.phone),
                                                          "residency": lead.residency}}


def assignment_public(a: Assignment, lead: Lead | None = None, deliveries: list[OfferDelivery] | None = None) -> dict:
    iso = clock.iso
    out = {"id": a.id, "visit_id": a.visit_id, "lead_id": a.lead_id, "team_code": a.team_code, "attempt": a.attempt,
           "status": a.status, "offered_at": iso(a.offered_at), "expires_at": iso(a.expires_at),
           "accepted_by": a.accepted_by, "accepted_at": iso(a.accepted_at), "declined_reason": a.declined_reason,
           "arrived_at": iso(a.arrived_at), "completed_at": iso(a.completed_at), "outcome": a.outcome,
           "arrived_received_at": iso(a.arrived_received_at), "completed_received_at": iso(a.completed_received_at),
           "checkin_at": iso(a.checkin_at), "checkin_due_at": iso(a.checkin_due_at),
           "backup": bool(a.choice.get("backup")),
           "met_in_person": a.met_in_person, "note": a.note, "loss_cny": cny(a.loss_cny),
           "saved_cny": cny(a.saved_cny), "checklist": a.checklist, "choice": a.choice}
    if lead is not None:
        out["lead"] = lead_brief(lead)
    if deliveries is not None:
        out["delivery"] = [delivery_public(d) for d in deliveries]
    return out


def delivery_public(d: OfferDelivery) -> dict:
    state = ("acked" if d.acked_at else "pushed" if d.pushed_at else "sms" if d.sms_at else "not_delivered")
    return {"username": d.username, "pushed_at": clock.iso(d.pushed_at), "acked_at": clock.iso(d.acked_at),
            "sms_at": clock.iso(d.sms_at), "state": state, "delivered": d.acked_at is not None}


def to_members(session: Session, team_code: str, type_: str, data: dict) -> list[str]:
    names = [u.username for u in members(session, team_code)]
    for n in names:
        outbox.push(session, n, type_, data)
    return names


def board_lead(session: Session, lead: Lead, **extra) -> None:
    outbox.board(session, "lead.updated", {"lead_id": lead.id, "status": lead.status, "tier": lead.tier,
                                           "assigned_team": lead.assigned_team, **extra}, district=lead.district_code)


def board_team(session: Session, team_code: str, squads: Squads | None = None, **extra) -> None:
    """The board hears of a squad's change; its district from `squads` when the caller read them."""
    known = next((q for q in squads.squads if q.code == team_code), None) if squads is not None else None
    team = known or session.get(Team, team_code)
    outbox.board(session, "team.updated", {"team_code": team_code, **extra},
                 district=team.district_code if team is not None else None)


def updated(session: Session, a: Assignment, lead: Lead) -> None:
    to_members(session, a.team_code, "assignment.updated", assignment_public(a, lead))


def withdraw(session: Session, a: Assignment, lead: Lead, actor: str, why: str,
             status: AssignmentStatus = A.withdrawn) -> None:
    """An open offer or assignment ends (withdrawn, declined, expired): its squad is told at once."""
    ASSIGNMENT.move(a, status)
    if status == A.withdrawn:
        record(session, lead.id, actor, "withdrawn", {"assignment_id": a.id, "team_code": a.team_code,
                                                      "reason": why})
    to_members(session, a.team_code, "offer.withdrawn", {"assignment_id": a.id, "reason": why, "status": a.status})
    updated(session, a, lead)
    board_team(session, a.team_code, open_assignments_delta=-1)


# ---------------------------------------------------------------- offering
def lock_visit(session: Session, visit_id: int) -> Visit | None:
    return session.execute(select(Visit).where(Visit.id == visit_id).with_for_update(key_share=True)).scalar()


def _tried(session: Session, visit_id: int) -> list[str]:
    return list(session.execute(select(Assignment.team_code).where(Assignment.visit_id == visit_id)
                                .order_by(Assignment.id)).scalars())


def candidates(session: Session, lead: Lead, visit: Visit | None, cfg: FieldConfig, k: int = 8) -> list[dict]:
    """The squads the matching would ask for this lead, best first, and why others cannot."""
    tried = frozenset(_tried(session, visit.id)) if visit else frozenset()
    ranked = rank_squads(lead.beat_code, lead.lon, lead.lat, of_district(load_squads(session, cfg), lead.district_code),
                         adjacency(session),
                         limit=cfg.workload_limit, tried=tried, k=k, with_unavailable=True)
    return [c.as_json() for c in ranked]


class Squads:
    """The squads as read once for a batch of dispatches; offers made in the batch count at once."""

    def __init__(self, session: Session, cfg: FieldConfig, district: str | None = None):
        """`district`: only the squads a lead of that district may get (of_district), not the city's."""
        self.squads, self.adjacency = load_squads(session, cfg, district=district), adjacency(session)

    def took(self, team_code: str) -> None:
        self.squads = [replace(q, open_assignments=q.open_assignments + 1) if q.code == team_code else q
                       for q in self.squads]


def dispatch_visits(session: Session, visit_ids: list[int], cfg: FieldConfig, online=None,
                    actor: str = "dispatch") -> list[Assignment]:
    """Waiting visits → offers to the best squads (or back to the center), in one transaction: visits,
    leads, the squads asked before and the squads are each read once. A visit another process holds
    is skipped (the sweep comes back to it if it is still waiting). Safe to run twice."""
    visits = session.execute(select(Visit).where(Visit.id.in_(visit_ids), Visit.status == V.waiting)
                             .order_by(Visit.id).with_for_update(skip_locked=True, key_share=True)).scalars().all()
    if not visits:
        return []
    leads = {x.id: x for x in session.execute(select(Lead).where(Lead.id.in_([v.lead_id for v in visits])))
             .scalars()}
    tried: dict[int, list[str]] = {}
    for vid, code in session.execute(select(Assignment.visit_id, Assignment.team_code).where(
            Assignment.visit_id.in_([v.id for v in visits])).order_by(Assignment.id)).all():
        tried.setdefault(vid, []).append(code)
    squads = Squads(session, cfg)
    made = []
    for visit in visits:
        a = offer_next(session, visit, cfg, online, actor, squads=squads, lead=leads[visit.lead_id],
                       tried=tried.get(visit.id, []))
        if a is not None:
            made.append(a)
    return made


def offer_new_visits(session: Session, visit_ids: list[int], lead: Lead, cfg: FieldConfig, online,
                     actor: str = "dispatch") -> list[Assignment]:
    """Visits this unit of work has just requested for `lead`, offered in it (the urgent path:
    workers.tasks.process_urgent): uncommitted, so nobody else holds them and no squad was asked."""
    squads = Squads(session, cfg, lead.district_code)
    made = (offer_next(session, session.get(Visit, vid), cfg, online, actor, squads=squads, lead=lead, tried=[])
            for vid in visit_ids)
    return [a for a in made if a is not None]


def offer_next(session: Session, visit: Visit, cfg: FieldConfig, online, actor: str,
               team_code: str | None = None, why: dict | None = None, squads: Squads | None = None,
               lead: Lead | None = None, tried: list[str] | None = None, backup: bool = False) -> Assignment | None:
    """The visit (waiting) → offered to `team_code`, or to the best squad not asked yet; a visit of a
    lead that ended is cancelled; with no squad left, back to the center. A `backup` offer (the squad
    that accepted is late) leaves the visit with that squad and adds the next one; none left → none."""
    lead = lead or session.get(Lead, visit.lead_id)
    tried = _tried(session, visit.id) if tried is None else tried
    if team_code is None:
        if lead.status in (LeadStatus.closed, LeadStatus.transferred):
            VISIT.move(visit, V.cancelled)
            record(session, lead.id, actor, "visit_cancelled", {"visit_id": visit.id, "reason": f"lead {lead.status}"})
            return None
        if len(tried) >= cfg.max_squads and not backup:
            return _back_to_center(session, visit, lead, actor, "max_squads", tried)
        squads = squads or Squads(session, cfg)
        choice: Choice = choose_squad(lead.beat_code, lead.lon, lead.lat, of_district(squads.squads, lead.district_code),
                                      squads.adjacency,
                                      limit=cfg.workload_limit, tried=frozenset(tried))
        if choice.team_code is None:
            return None if backup else _back_to_center(session, visit, lead, actor, "none_available", tried)
        team_code, why = choice.team_code, choice.as_json() | ({"backup": True} if backup else {})
    now = clock.now()
    a = Assignment(visit_id=visit.id, lead_id=lead.id, team_code=team_code, attempt=len(tried) + 1, choice=why,
                   offered_at=now, expires_at=now + timedelta(seconds=cfg.offer_timeout_s), status=A.offered.value)
    session.add(a)
    if not backup:
        VISIT.move(visit, V.offered)
        visit.team_code = team_code
    session.flush()
    if squads is not None:
        squads.took(team_code)
    people = members(session, team_code)
    for u in people:
        session.add(OfferDelivery(assignment_id=a.id, username=u.username))
    record(session, lead.id, actor, "offered", {"assignment_id": a.id, "team_code": team_code, "attempt": a.attempt,
                                                "reason": why.get("reason"), "expires_at": clock.iso(a.expires_at),
                                                "backup": backup})
    if a.attempt == 1 and not backup and lead.received_at is not None:  # a visit's first offer: push → offer
        outbox.count(session, [(metrics.PUSH_TO_OFFER, (), max(0.0, (now - lead.received_at).total_seconds()))])
    offer = offer_message(a, lead)
    for u in people:
        outbox.push(session, u.username, "offer", offer)
    live = online([u.username for u in people]) if online is not None else set()
    if not live:  # nobody could get it on a socket: SMS now, the timeout still runs
        sms_fallback(session, a, lead, cfg, people, "no_live_socket")
    board_lead(session, lead, visit={"id": visit.id, "status": visit.status, "team_code": visit.team_code},
               assignment_id=a.id, backup=backup or None)
    board_team(session, team_code, squads, open_assignments_delta=1)
    return a


def offer_message(a: Assignment, lead: Lead) -> dict:
    """The `offer` a squad member's socket gets (the first push and any push again are the same)."""
    return {"assignment_id": a.id, "lead": lead_brief(lead), "expires_at": clock.iso(a.expires_at),
            "attempt": a.attempt, "reason": a.choice.get("reason"), "backup": bool(a.choice.get("backup"))}


def chase(session: Session, visit_id: int, cfg: FieldConfig, online, actor: str = "sweep") -> Assignment | None:
    """追: the squad that accepted is not on scene by the deadline — the next squad is offered the
    visit as backup (the first keeps it: whoever gets there first). → the backup offer, if any squad
    is free."""
    visit = lock_visit(session, visit_id)
    if visit is None or visit.status != V.assigned:
        return None
    return offer_next(session, visit, cfg, online, actor, backup=True)


def _back_to_center(session: Session, visit: Visit, lead: Lead, actor: str, reason: str, tried: list[str]) -> None:
    VISIT.move(visit, V.failed)
    record(session, lead.id, actor, "visit_failed", {"visit_id": visit.id, "reason": reason, "tried": tried})
    board_lead(session, lead, visit={"id": visit.id, "status": visit.status}, alert="no_squad", reason=reason,
               tried=tried)
    return None


def sms_fallback(session: Session, a: Assignment, lead: Lead, cfg: FieldConfig, people: list[Member], why: str) -> int:
    """One SMS per member not reached, idempotent on `offer:<assignment>:<username>`, and one per phone
    (members whose logins share a roster phone get one between them); each leaves right after the
    commit (the outbox). → members reached."""
    now = clock.now()
    deliveries = {d.username: d for d in session.execute(
        select(OfferDelivery).where(OfferDelivery.assignment_id == a.id)).scalars()}
    unreached = {name for name, d in deliveries.items() if d.acked_at is None and d.sms_at is None}
    due = [u for u in people if u.username in unreached]
    if not due:
        return 0
    # The squad's roster and the SMS made before, each read once for all its members (not per member).
    keys = {u.username: f"offer:{a.id}:{u.username}" for u in due}
    made = dict(session.execute(select(SmsMessage.idempotency_key, SmsMessage.to_phone)
                                .where(SmsMessage.idempotency_key.in_(list(keys.values())))).all())
    texted = set(made.values())  # one SMS a phone: two logins on one roster phone (by role) get one
    rows = roster(session, a.team_code)  # `people` are the members of the squad offered
    # A phone's SMS is keyed to the login its roster entry names, before one that shares it by role:
    # a reply from that phone (replies.py) answers as the member the key names.
    linked = {m.username for m in rows if m.username}
    due.sort(key=lambda u: u.username not in linked)
    sent = 0
    for u in due:
        phone = member_phone(u, rows)
        if not phone:
            continue
        d, key = deliveries[u.username], keys[u.username]
        if key not in made and phone not in texted:
            texted.add(phone)
            body = (f"【反诈派单】{lead.tier or ''}见面劝阻 {lead.beat_code or ''}，请于"
                    f"{a.expires_at.astimezone(clock.CENTER_TZ):%H:%M:%S}前接单：{cfg.field_page_url}?a={a.id}")
            queue_sms(session, to_phone=phone, body=body, purpose=SmsPurpose.offer, idempotency_key=key,
                      lead_id=lead.id, assignment_id=a.id)
        d.sms_at = now
        sent += 1
    if sent:
        record(session, lead.id, "dispatch", "offer_sms", {"assignment_id": a.id, "why": why, "members": sent})
        outbox.board(session, "lead.updated", {"lead_id": lead.id, "assignment_id": a.id,
                                               "delivery": "not_delivered", "why": why}, district=lead.district_code)
    return sent


def reoffer(session: Session, a: Assignment, lead: Lead, cfg: FieldConfig, online, why: str,
            status: AssignmentStatus) -> None:
    """The squad declined or let the offer expire: withdrawn from it, offered to the next squad (a
    backup offer just ends: the visit stays with the squad that has it)."""
    withdraw(session, a, lead, "dispatch", why, status)
    if a.choice.get("backup"):
        return
    visit = lock_visit(session, a.visit_id)
    VISIT.move(visit, V.waiting)
    offer_next(session, visit, cfg, online, "dispatch")


# ---------------------------------------------------------------- the sweep (workers)
def expire_offers(session: Session, cfg: FieldConfig, online=None, limit: int = 500) -> int:
    """Offers past `expires_at` → expired, and their visits offered to the next squad."""
    rows = session.execute(select(Assignment).where(Assignment.status == A.offered,
                                                    Assignment.expires_at <= clock.now())
                           .order_by(Assignment.expires_at).limit(limit).with_for_update(skip_locked=True,
                                                                                         key_share=True)
                           ).scalars().all()
    for a in rows:
        lead = session.get(Lead, a.lead_id)
        record(session, lead.id, "dispatch", "expired", {"assignment_id": a.id, "team_code": a.team_code})
        reoffer(session, a, lead, cfg, online, "expired", A.expired)
    return len(rows)


def waiting_visits(session: Session, older_than_s: float, limit: int = 500) -> list[int]:
    """Visits nobody dispatched (a lost job, a crash between commit and sending)."""
    return list(session.execute(select(Visit.id).where(
        Visit.status == V.waiting, Visit.requested_at <= clock.now() - timedelta(seconds=older_than_s))
        .order_by(Visit.id).limit(limit)).scalars())


def unacked_fallbacks(session: Session, cfg: FieldConfig, limit: int = 500) -> int:
    """Offers no member acked within `ack_s`: SMS to the members not reached (once each)."""
    due = clock.now() - timedelta(seconds=cfg.ack_s)
    acked = select(OfferDelivery.assignment_id).where(OfferDelivery.acked_at.is_not(None))
    unsent = select(OfferDelivery.assignment_id).where(OfferDelivery.sms_at.is_(None))
    rows = session.execute(select(Assignment).where(
        Assignment.status == A.offered, Assignment.offered_at <= due, Assignment.id.not_in(acked),
        Assignment.id.in_(unsent)).limit(limit).with_for_update(skip_locked=True, key_share=True)).scalars().all()
    for a in rows:
        sms_fallback(session, a, session.get(Lead, a.lead_id), cfg, members(session, a.team_code), "no_ack")
    return len(rows)


def repush_undelivered(session: Session, older_than_s: float, online, limit: int = 500) -> int:
    """Open offers that a member with a live socket has not had `older_than_s` after they were made
    (not pushed, not acked) are pushed to that member again. Their first push never reached the
    socket: it was lost with Redis after the commit, or Redis came back without its counters and
    the socket dropped it as already seen. The offer's truth is in PostgreSQL (`offer_delivery`),
    so no offer is lost with Redis. → pushes sent."""
    now = clock.now()
    rows = session.execute(select(OfferDelivery.username, Assignment).join(
        Assignment, Assignment.id == OfferDelivery.assignment_id).where(
        Assignment.status == A.offered, Assignment.expires_at > now,
        Assignment.offered_at <= now - timedelta(seconds=older_than_s),
        OfferDelivery.pushed_at.is_(None), OfferDelivery.acked_at.is_(None))
        .order_by(Assignment.id, OfferDelivery.username).limit(limit)).all()
    live = online(sorted({u for u, _a in rows})) if rows and online is not None else set()
    leads: dict[int, Lead] = {}
    sent = 0
    for username, a in rows:
        if username not in live:  # no socket: the SMS fallback reaches them, the stream keeps the first push
            continue
        lead = leads.get(a.lead_id) or leads.setdefault(a.lead_id, session.get(Lead, a.lead_id))
        outbox.push(session, username, "offer", offer_message(a, lead))
        sent += 1
    return sent


def end_other_offers(session: Session, a: Assignment, lead: Lead, actor: str) -> int:
    """The visit is done by `a`'s squad: any other squad still on it (a backup, or the late one) is
    withdrawn and told at once."""
    others = session.execute(select(Assignment).where(
        Assignment.visit_id == a.visit_id, Assignment.id != a.id,
        Assignment.status.in_((A.offered, A.accepted, A.arrived))).with_for_update(key_share=True)).scalars().all()
    for o in others:
        withdraw(session, o, lead, actor, "visit_done")
    return len(others)


def late_squad(session: Session, lead_id: int) -> Assignment | None:
    """The squad that accepted the lead's visit and is not on scene (for a missed on-scene deadline)."""
    return session.execute(select(Assignment).join(Visit, Visit.id == Assignment.visit_id).where(
        Assignment.lead_id == lead_id, Assignment.status == A.accepted, Visit.status == V.assigned)
        .order_by(Assignment.id)).scalars().first()


def on_scene_squad(session: Session, lead_id: int) -> Assignment | None:
    return session.execute(select(Assignment).where(Assignment.lead_id == lead_id, Assignment.status == A.arrived)
                           .order_by(Assignment.arrived_at.desc())).scalars().first()
