"""Field dispatch use cases (派单): offer a visit to a squad, accept / decline / arrive / complete,
expiry and the SMS fallback. Services never commit; pushes and jobs are queued on the session
(`dispatch.events`) and go out with the caller's commit.

Written on a sync `Session`: the workers call them directly, the API through
`AsyncSession.run_sync` — one implementation for REST, the socket and the sweep."""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, update
from sqlmodel import Session

from dispatch import events
from dispatch.actions import close_lead, mark_met
from dispatch.enums import LeadStatus, Outcome, can_transition
from dispatch.matching import Choice, Squad, choose_squad, rank_squads, squad_position
from dispatch.models import Assignment, Lead, LeadEvent, OfferDelivery, SmsMessage, Team, TeamMember, Visit
from dispatch.sms import queue_sms
from dispatch.validation import CENTER_TZ, mask_phone
from dispatch.visits import open_visit, request_visit
from geo.adjacency import beat_adjacency
from geo.models import Beat, District, Station
from service.core import clock
from service.core.auth import CENTER_ROLES, SQUAD_ROLES, Principal
from service.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from service.core.models import User

OPEN_ASSIGNMENT = ("offered", "accepted", "arrived")


@dataclass(frozen=True, slots=True)
class FieldConfig:
    offer_timeout_s: float = 60.0
    ack_s: float = 10.0
    max_squads: int = 3
    workload_limit: int = 3
    stale_s: float = 600.0
    field_page_url: str = "/m/"

    @classmethod
    def of(cls, settings, policy) -> FieldConfig:
        return cls(offer_timeout_s=float(policy.escalation.offer_timeout_seconds), ack_s=settings.offer_ack_seconds,
                   max_squads=settings.offer_max_squads, workload_limit=settings.squad_workload_limit,
                   stale_s=settings.location_stale_seconds, field_page_url=settings.field_page_url)


def _iso(t: datetime | None) -> str | None:
    return t.astimezone(CENTER_TZ).isoformat() if t else None


def _money(x) -> float | None:
    return float(x) if x is not None else None


# ---------------------------------------------------------------- reading squads


_adjacency_cache: dict[tuple[str, int], dict[str, tuple[str, ...]]] = {}


def adjacency(session: Session) -> dict[str, tuple[str, ...]]:
    """Beat neighbours, computed once per process and district version."""
    d = session.execute(select(District.code, District.version)).first()
    if d is None:
        return {}
    key = (d[0], d[1])
    if key not in _adjacency_cache:
        beats = session.execute(select(Beat.code, Beat.geometry).order_by(Beat.code)).all()
        _adjacency_cache.clear()
        _adjacency_cache[key] = beat_adjacency([(c, g) for c, g in beats])
    return _adjacency_cache[key]


def open_counts(session: Session) -> dict[str, int]:
    return dict(session.execute(select(Assignment.team_code, func.count()).where(
        Assignment.status.in_(OPEN_ASSIGNMENT)).group_by(Assignment.team_code)).all())


def load_squads(session: Session, cfg: FieldConfig, codes: list[str] | None = None) -> list[Squad]:
    now = clock.now()
    counts = open_counts(session)
    q = (select(Team, Station.lon, Station.lat).outerjoin(Beat, Beat.code == Team.beat_code)
         .outerjoin(Station, Station.code == Beat.station_code).order_by(Team.code))
    if codes is not None:
        q = q.where(Team.code.in_(codes))
    out = []
    for team, slon, slat in session.execute(q).all():
        pos = squad_position((team.last_lon, team.last_lat) if team.last_lon is not None else None, team.last_at,
                             (team.home_lon, team.home_lat) if team.home_lon is not None else None,
                             (slon, slat) if slon is not None else None, now, cfg.stale_s)
        out.append(Squad(team.code, team.beat_code, team.status, counts.get(team.code, 0), pos))
    return out


def members(session: Session, team_code: str) -> list[User]:
    """The squad's people with accounts (民警, 辅警, 网格员): they get its offers."""
    return list(session.execute(select(User).where(User.team_code == team_code, User.active.is_(True),
                                                   User.role.in_(list(SQUAD_ROLES))).order_by(User.username))
                .scalars())


def _member_phone(session: Session, user: User) -> str | None:
    """The roster phone of a member user: linked by username, else the roster entry of the same role."""
    rows = session.execute(select(TeamMember).where(TeamMember.team_code == user.team_code)
                           .order_by(TeamMember.id)).scalars().all()
    linked = next((m for m in rows if m.username == user.username), None)
    same_role = next((m for m in rows if m.role == user.role), None)
    m = linked or same_role
    return m.phone if m else None


# ---------------------------------------------------------------- shapes on the wire


def lead_brief(lead: Lead) -> dict:
    """What an offer tells a squad before it accepts: enough to decide and go, nothing more (masked)."""
    return {"id": lead.id, "tier": lead.tier, "fraud_type": lead.fraud_type, "warning_type": lead.warning_type,
            "risk_level": lead.risk_level, "beat_code": lead.beat_code, "street_code": lead.street_code,
            "lon": lead.lon, "lat": lead.lat, "subject": {"name": lead.name, "phone": mask_phone(lead.phone),
                                                          "residency": lead.residency}}


def assignment_public(a: Assignment, lead: Lead | None = None, deliveries: list[OfferDelivery] | None = None) -> dict:
    out = {"id": a.id, "visit_id": a.visit_id, "lead_id": a.lead_id, "team_code": a.team_code, "attempt": a.attempt,
           "status": a.status, "offered_at": _iso(a.offered_at), "expires_at": _iso(a.expires_at),
           "accepted_by": a.accepted_by, "accepted_at": _iso(a.accepted_at), "declined_reason": a.declined_reason,
           "arrived_at": _iso(a.arrived_at), "completed_at": _iso(a.completed_at), "outcome": a.outcome,
           "met_in_person": a.met_in_person, "note": a.note, "loss_cny": _money(a.loss_cny),
           "saved_cny": _money(a.saved_cny), "checklist": a.checklist, "choice": a.choice}
    if lead is not None:
        out["lead"] = lead_brief(lead)
    if deliveries is not None:
        out["delivery"] = [delivery_public(d) for d in deliveries]
    return out


def delivery_public(d: OfferDelivery) -> dict:
    state = ("acked" if d.acked_at else "pushed" if d.pushed_at else "sms" if d.sms_at else "not_delivered")
    return {"username": d.username, "pushed_at": _iso(d.pushed_at), "acked_at": _iso(d.acked_at),
            "sms_at": _iso(d.sms_at), "state": state, "delivered": d.acked_at is not None}


def _event(session: Session, lead_id: int, actor: str, kind: str, data: dict) -> None:
    session.add(LeadEvent(lead_id=lead_id, actor=actor, kind=kind, data=data))


def _to_members(session: Session, team_code: str, type_: str, data: dict) -> list[str]:
    names = [u.username for u in members(session, team_code)]
    for n in names:
        events.push(session, n, type_, data)
    return names


def _board_lead(session: Session, lead: Lead, **extra) -> None:
    events.board(session, "lead.updated", {"lead_id": lead.id, "status": lead.status, "tier": lead.tier,
                                           "assigned_team": lead.assigned_team, **extra})


def _board_team(session: Session, team_code: str, **extra) -> None:
    events.board(session, "team.updated", {"team_code": team_code, **extra})


# ---------------------------------------------------------------- offering


def _lock_visit(session: Session, visit_id: int) -> Visit | None:
    return session.execute(select(Visit).where(Visit.id == visit_id).with_for_update()).scalar()


def _tried(session: Session, visit_id: int) -> list[str]:
    return list(session.execute(select(Assignment.team_code).where(Assignment.visit_id == visit_id)
                                .order_by(Assignment.id)).scalars())


def candidates(session: Session, lead: Lead, cfg: FieldConfig, k: int = 8) -> list[dict]:
    """The squads the matching would ask for this lead, best first, and why others cannot."""
    visit = open_visit(session, lead.id)
    tried = frozenset(_tried(session, visit.id)) if visit else frozenset()
    ranked = rank_squads(lead.beat_code, lead.lon, lead.lat, load_squads(session, cfg), adjacency(session),
                         limit=cfg.workload_limit, tried=tried, k=k, with_unavailable=True)
    return [c.as_json() for c in ranked]


class _Squads:
    """The squads as read once for a batch of dispatches; offers made in the batch count at once."""

    def __init__(self, session: Session, cfg: FieldConfig):
        self.squads, self.adjacency = load_squads(session, cfg), adjacency(session)

    def took(self, team_code: str) -> None:
        self.squads = [replace(q, open_assignments=q.open_assignments + 1) if q.code == team_code else q
                       for q in self.squads]


def dispatch_visit(session: Session, visit_id: int, cfg: FieldConfig, online=None, actor: str = "dispatch"
                   ) -> Assignment | None:
    """A waiting visit → an offer to the best squad not yet asked; after `max_squads` squads, or
    with none available, back to the center (visit `failed`, an alert on the board).
    Safe to run twice: only a `waiting` visit is dispatched."""
    made = dispatch_visits(session, [visit_id], cfg, online, actor)
    return made[0] if made else None


def dispatch_visits(session: Session, visit_ids: list[int], cfg: FieldConfig, online=None,
                    actor: str = "dispatch") -> list[Assignment]:
    """Many waiting visits in one transaction (a worker's batch of leads): visits, leads, the squads
    asked before and the squads are each read once. A visit another process holds is skipped
    (the sweep comes back to it if it is still waiting)."""
    visits = session.execute(select(Visit).where(Visit.id.in_(visit_ids), Visit.status == "waiting")
                             .order_by(Visit.id).with_for_update(skip_locked=True)).scalars().all()
    if not visits:
        return []
    leads = {x.id: x for x in session.execute(select(Lead).where(Lead.id.in_([v.lead_id for v in visits])))
             .scalars()}
    tried: dict[int, list[str]] = {}
    for vid, code in session.execute(select(Assignment.visit_id, Assignment.team_code).where(
            Assignment.visit_id.in_([v.id for v in visits])).order_by(Assignment.id)).all():
        tried.setdefault(vid, []).append(code)
    squads = _Squads(session, cfg)
    made = []
    for visit in visits:
        a = _offer_next(session, visit, cfg, online, actor, squads=squads, lead=leads[visit.lead_id],
                        tried=tried.get(visit.id, []))
        if a is not None:
            made.append(a)
    return made


def _offer_next(session: Session, visit: Visit, cfg: FieldConfig, online, actor: str,
                team_code: str | None = None, why: dict | None = None, squads: _Squads | None = None,
                lead: Lead | None = None, tried: list[str] | None = None) -> Assignment | None:
    lead = lead or session.get(Lead, visit.lead_id)
    tried = _tried(session, visit.id) if tried is None else tried
    if team_code is None:
        if lead.status in (LeadStatus.closed, LeadStatus.transferred):
            visit.status = "cancelled"
            _event(session, lead.id, actor, "visit_cancelled", {"visit_id": visit.id, "reason": f"lead {lead.status}"})
            return None
        if len(tried) >= cfg.max_squads:
            return _back_to_center(session, visit, lead, actor, "max_squads", tried)
        squads = squads or _Squads(session, cfg)
        choice: Choice = choose_squad(lead.beat_code, lead.lon, lead.lat, squads.squads, squads.adjacency,
                                      limit=cfg.workload_limit, tried=frozenset(tried))
        if choice.team_code is None:
            return _back_to_center(session, visit, lead, actor, "none_available", tried)
        team_code, why = choice.team_code, choice.as_json()
    now = clock.now()
    a = Assignment(visit_id=visit.id, lead_id=lead.id, team_code=team_code, attempt=len(tried) + 1, choice=why,
                   offered_at=now, expires_at=now + timedelta(seconds=cfg.offer_timeout_s))
    session.add(a)
    visit.status, visit.team_code = "offered", team_code
    session.flush()
    if squads is not None:
        squads.took(team_code)
    people = members(session, team_code)
    for u in people:
        session.add(OfferDelivery(assignment_id=a.id, username=u.username))
    _event(session, lead.id, actor, "offered", {"assignment_id": a.id, "team_code": team_code, "attempt": a.attempt,
                                                "reason": why.get("reason"), "expires_at": _iso(a.expires_at)})
    offer = {"assignment_id": a.id, "lead": lead_brief(lead), "expires_at": _iso(a.expires_at),
             "attempt": a.attempt, "reason": why.get("reason")}
    for u in people:
        events.push(session, u.username, "offer", offer)
    live = online([u.username for u in people]) if online is not None else set()
    if not live:  # nobody could get it on a socket: SMS now, the timeout still runs
        _sms_fallback(session, a, lead, cfg, people, "no_live_socket")
    _board_lead(session, lead, visit={"id": visit.id, "status": visit.status, "team_code": team_code},
                assignment_id=a.id)
    _board_team(session, team_code, open_assignments_delta=1)
    return a


def _back_to_center(session: Session, visit: Visit, lead: Lead, actor: str, reason: str, tried: list[str]) -> None:
    visit.status = "failed"
    _event(session, lead.id, actor, "visit_failed", {"visit_id": visit.id, "reason": reason, "tried": tried})
    _board_lead(session, lead, visit={"id": visit.id, "status": "failed"}, alert="no_squad", reason=reason,
                tried=tried)
    return None


def _sms_fallback(session: Session, a: Assignment, lead: Lead, cfg: FieldConfig, people: list[User],
                  why: str) -> int:
    """One SMS per member not reached, idempotent on `offer:<assignment>:<username>` (h3's worker sends)."""
    now = clock.now()
    deliveries = {d.username: d for d in session.execute(
        select(OfferDelivery).where(OfferDelivery.assignment_id == a.id)).scalars()}
    sent = 0
    for u in people:
        d = deliveries.get(u.username)
        if d is None or d.acked_at is not None or d.sms_at is not None:
            continue
        phone = _member_phone(session, u)
        if not phone:
            continue
        key = f"offer:{a.id}:{u.username}"
        exists = session.execute(select(SmsMessage.id).where(SmsMessage.idempotency_key == key)).first()
        if exists is None:
            body = (f"【反诈派单】{lead.tier or ''}见面劝阻 {lead.beat_code or ''}，请于"
                    f"{a.expires_at.astimezone(CENTER_TZ):%H:%M:%S}前接单：{cfg.field_page_url}?a={a.id}")
            queue_sms(session, to_phone=phone, body=body, purpose="offer", idempotency_key=key, lead_id=lead.id,
                      assignment_id=a.id)
        d.sms_at = now
        sent += 1
    if sent:
        _event(session, lead.id, "dispatch", "offer_sms", {"assignment_id": a.id, "why": why, "members": sent})
        events.board(session, "lead.updated", {"lead_id": lead.id, "assignment_id": a.id,
                                               "delivery": "not_delivered", "why": why})
    return sent


# ---------------------------------------------------------------- the squad's answers


def _lock_assignment(session: Session, assignment_id: int, who: Principal) -> Assignment:
    a = session.execute(select(Assignment).where(Assignment.id == assignment_id).with_for_update()).scalar()
    if a is None or (who.role in SQUAD_ROLES and a.team_code != who.team_code):
        raise NotFound(f"assignment {assignment_id} not found")  # another squad's work does not exist for you
    if who.role not in SQUAD_ROLES and who.role not in CENTER_ROLES:
        raise Forbidden("only squad members and the center act on assignments")
    return a


def _need(a: Assignment, *states: str) -> None:
    if a.status not in states:
        raise Conflict(f"assignment {a.id} is {a.status}; this needs {' or '.join(states)}")


def _updated(session: Session, a: Assignment, lead: Lead) -> None:
    _to_members(session, a.team_code, "assignment.updated", assignment_public(a, lead))


def accept(session: Session, assignment_id: int, who: Principal) -> dict:
    """接单: the first member's accept wins for the squad; another at the same time gets 409."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, "offered")
    if clock.now() >= a.expires_at:
        raise Conflict(f"assignment {a.id} expired at {_iso(a.expires_at)}")
    now = clock.now()
    a.status, a.accepted_by, a.accepted_at = "accepted", who.name, now
    visit = _lock_visit(session, a.visit_id)
    visit.status, visit.team_code = "assigned", a.team_code
    lead = session.get(Lead, a.lead_id)
    lead.assigned_team = a.team_code
    if lead.status == LeadStatus.tiered and can_transition(lead.status, LeadStatus.working):
        lead.status = LeadStatus.working
    lead.updated_at = func.now()
    session.execute(update(OfferDelivery).where(OfferDelivery.assignment_id == a.id,
                                                OfferDelivery.username == who.name,
                                                OfferDelivery.acked_at.is_(None)).values(acked_at=now))
    _event(session, lead.id, who.actor, "accepted", {"assignment_id": a.id, "team_code": a.team_code})
    _updated(session, a, lead)
    _board_lead(session, lead, visit={"id": visit.id, "status": visit.status, "team_code": a.team_code},
                assignment_id=a.id)
    return assignment_public(a, lead)


def decline(session: Session, assignment_id: int, who: Principal, reason: str | None, cfg: FieldConfig,
            online=None) -> dict:
    """拒单: withdrawn from this squad and offered to the next one."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, "offered")
    a.status, a.declined_reason = "declined", reason
    lead = session.get(Lead, a.lead_id)
    _event(session, lead.id, who.actor, "declined", {"assignment_id": a.id, "team_code": a.team_code,
                                                     "reason": reason})
    _withdrawn(session, a, lead, "declined")
    out = assignment_public(a, lead)
    visit = _lock_visit(session, a.visit_id)
    visit.status = "waiting"
    _offer_next(session, visit, cfg, online, "dispatch")
    return out


def _withdrawn(session: Session, a: Assignment, lead: Lead, why: str) -> None:
    _to_members(session, a.team_code, "offer.withdrawn", {"assignment_id": a.id, "reason": why,
                                                          "status": a.status})
    _updated(session, a, lead)
    _board_team(session, a.team_code, open_assignments_delta=-1)


def arrive(session: Session, assignment_id: int, who: Principal) -> dict:
    """到场."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, "accepted")
    a.status, a.arrived_at = "arrived", clock.now()
    visit = _lock_visit(session, a.visit_id)
    visit.status = "arrived"
    lead = session.get(Lead, a.lead_id)
    _event(session, lead.id, who.actor, "arrived", {"assignment_id": a.id, "team_code": a.team_code})
    for deadline in ("on_scene", "visit"):  # 到场: the squad is with the person
        mark_met(session, lead.id, deadline, a.arrived_at)
    _updated(session, a, lead)
    _board_lead(session, lead, visit={"id": visit.id, "status": "arrived", "team_code": a.team_code})
    return assignment_public(a, lead)


@dataclass(frozen=True, slots=True)
class Completion:
    outcome: Outcome
    met_in_person: bool
    note: str | None = None
    loss_cny: Decimal | None = None
    saved_cny: Decimal | None = None
    checklist: dict | None = None


def complete(session: Session, assignment_id: int, who: Principal, c: Completion) -> dict:
    """见面劝阻 done: the visit's outcome, and the lead closed with it."""
    a = _lock_assignment(session, assignment_id, who)
    _need(a, "arrived", "accepted")
    now = clock.now()
    a.status, a.completed_at, a.outcome, a.met_in_person = "completed", now, c.outcome, c.met_in_person
    a.note, a.loss_cny, a.saved_cny, a.checklist = c.note, c.loss_cny, c.saved_cny, c.checklist
    if a.arrived_at is None:
        a.arrived_at = now
    visit = _lock_visit(session, a.visit_id)
    visit.status, visit.done_at, visit.met_in_person, visit.outcome = "done", now, c.met_in_person, c.outcome
    lead = session.get(Lead, a.lead_id)
    _event(session, lead.id, who.actor, "visit_completed",
           {"assignment_id": a.id, "team_code": a.team_code, "outcome": c.outcome, "met_in_person": c.met_in_person,
            "loss_cny": _money(c.loss_cny), "saved_cny": _money(c.saved_cny), "checklist": c.checklist})
    # The one way a lead closes (dispatch.actions.close_lead): deadlines cancelled, callback scheduled.
    # A lead the center closed or transferred meanwhile keeps that; the outcome stays on the visit.
    if can_transition(lead.status, LeadStatus.closed):
        close_lead(session, lead, c.outcome, actor=who.actor, note=c.note, loss_cny=c.loss_cny,
                   saved_cny=c.saved_cny, met_in_person=c.met_in_person, rule="visit_completed")
    _updated(session, a, lead)
    _board_lead(session, lead, outcome=lead.outcome, visit={"id": visit.id, "status": "done"})
    _board_team(session, a.team_code, open_assignments_delta=-1)
    return assignment_public(a, lead)


# ---------------------------------------------------------------- the center's assign (指派)


def assign(session: Session, lead_id: int, team_code: str, who: Principal, cfg: FieldConfig, online=None) -> dict:
    """The center offers the lead's visit to a squad of its choosing (the screen warns; the API does not
    refuse an off-duty or loaded squad). An open offer to another squad is withdrawn first."""
    lead = session.execute(select(Lead).where(Lead.id == lead_id).with_for_update()).scalar()
    if lead is None:
        raise NotFound(f"lead {lead_id} not found")
    if lead.status not in (LeadStatus.tiered, LeadStatus.working):
        raise Conflict(f"lead {lead_id} is {lead.status}; only tiered or working leads get a squad")
    if session.get(Team, team_code) is None:
        raise ValidationFailed([{"field": "team_code", "message": f"no team {team_code!r}"}])
    visit = request_visit(session, lead, "center", actor=who.actor)
    visit = _lock_visit(session, visit.id)
    if visit.status in ("assigned", "arrived"):
        raise Conflict(f"visit {visit.id} is {visit.status} (squad {visit.team_code}); it cannot be reassigned now")
    if visit.status == "offered":
        offers = session.execute(select(Assignment).where(Assignment.visit_id == visit.id,
                                                          Assignment.status == "offered").with_for_update()).scalars().all()
        held = next((a for a in offers if a.team_code == team_code and clock.now() < a.expires_at), None)
        if held is not None:  # the squad already holds the open offer: keep it (no second push, no second SMS)
            return assignment_public(held, lead)
        for a in offers:
            a.status = "withdrawn"
            _event(session, lead.id, who.actor, "withdrawn", {"assignment_id": a.id, "team_code": a.team_code,
                                                              "reason": "center_assign"})
            _withdrawn(session, a, lead, "center_assign")
    squad = next(iter(load_squads(session, cfg, [team_code])))
    warnings = [w for w, bad in (("off_duty", squad.status != "on_duty"),
                                 ("workload", squad.open_assignments >= cfg.workload_limit),
                                 ("stale_location", not squad.position.fresh)) if bad]
    why = {"team_code": team_code, "reason": "center", "by": who.name, "warnings": warnings, "next": []}
    a = _offer_next(session, visit, cfg, online, who.actor, team_code=team_code, why=why)
    return assignment_public(a, lead)


# ---------------------------------------------------------------- the sweep (workers)


def expire_offers(session: Session, cfg: FieldConfig, online=None, limit: int = 500) -> int:
    """Offers past `expires_at` → expired, and their visits offered to the next squad."""
    rows = session.execute(select(Assignment).where(Assignment.status == "offered",
                                                    Assignment.expires_at <= clock.now())
                           .order_by(Assignment.expires_at).limit(limit).with_for_update(skip_locked=True)
                           ).scalars().all()
    for a in rows:
        a.status = "expired"
        lead = session.get(Lead, a.lead_id)
        _event(session, lead.id, "dispatch", "expired", {"assignment_id": a.id, "team_code": a.team_code})
        _withdrawn(session, a, lead, "expired")
        visit = _lock_visit(session, a.visit_id)
        visit.status = "waiting"
        _offer_next(session, visit, cfg, online, "dispatch")
    return len(rows)


def waiting_visits(session: Session, older_than_s: float, limit: int = 500) -> list[int]:
    """Visits nobody dispatched (a lost job, a crash between commit and enqueue)."""
    return list(session.execute(select(Visit.id).where(
        Visit.status == "waiting", Visit.requested_at <= clock.now() - timedelta(seconds=older_than_s))
        .order_by(Visit.id).limit(limit)).scalars())


def unacked_fallbacks(session: Session, cfg: FieldConfig, limit: int = 500) -> int:
    """Offers no member acked within `ack_s`: SMS to the members not reached (once each)."""
    due = clock.now() - timedelta(seconds=cfg.ack_s)
    acked = select(OfferDelivery.assignment_id).where(OfferDelivery.acked_at.is_not(None))
    unsent = select(OfferDelivery.assignment_id).where(OfferDelivery.sms_at.is_(None))
    rows = session.execute(select(Assignment).where(
        Assignment.status == "offered", Assignment.offered_at <= due, Assignment.id.not_in(acked),
        Assignment.id.in_(unsent)).limit(limit).with_for_update(skip_locked=True)).scalars().all()
    for a in rows:
        _sms_fallback(session, a, session.get(Lead, a.lead_id), cfg, members(session, a.team_code), "no_ack")
    return len(rows)


# ---------------------------------------------------------------- reading assignments


def list_assignments(session: Session, who: Principal, mine: bool, status: str | None, team_code: str | None,
                     limit: int) -> list[dict]:
    q = select(Assignment, Lead).join(Lead, Lead.id == Assignment.lead_id).order_by(Assignment.id.desc()).limit(limit)
    if who.role in SQUAD_ROLES:
        q = q.where(Assignment.team_code == (who.team_code or ""))
    elif mine:
        q = q.where(Assignment.accepted_by == who.name)
    if team_code:
        q = q.where(Assignment.team_code == team_code)
    if status:
        q = q.where(Assignment.status == status)
    rows = session.execute(q).all()
    ids = [a.id for a, _l in rows]
    by: dict[int, list[OfferDelivery]] = {}
    for d in session.execute(select(OfferDelivery).where(OfferDelivery.assignment_id.in_(ids))
                             .order_by(OfferDelivery.username)).scalars():
        by.setdefault(d.assignment_id, []).append(d)
    return [assignment_public(a, lead, by.get(a.id, [])) for a, lead in rows]


def mark_pushed(session: Session, username: str, assignment_ids: list[int]) -> None:
    session.execute(update(OfferDelivery).where(OfferDelivery.username == username,
                                                OfferDelivery.assignment_id.in_(assignment_ids),
                                                OfferDelivery.pushed_at.is_(None)).values(pushed_at=clock.now()))


def mark_acked(session: Session, username: str, assignment_ids: list[int]) -> None:
    now = clock.now()
    session.execute(update(OfferDelivery).where(OfferDelivery.username == username,
                                                OfferDelivery.assignment_id.in_(assignment_ids),
                                                OfferDelivery.pushed_at.is_(None)).values(pushed_at=now))
    session.execute(update(OfferDelivery).where(OfferDelivery.username == username,
                                                OfferDelivery.assignment_id.in_(assignment_ids),
                                                OfferDelivery.acked_at.is_(None)).values(acked_at=now))


def get_assignment(session: Session, assignment_id: int, who: Principal) -> dict:
    a = session.get(Assignment, assignment_id)
    if a is None or (who.role in SQUAD_ROLES and a.team_code != who.team_code):
        raise NotFound(f"assignment {assignment_id} not found")
    ds = session.execute(select(OfferDelivery).where(OfferDelivery.assignment_id == a.id)
                         .order_by(OfferDelivery.username)).scalars().all()
    return assignment_public(a, session.get(Lead, a.lead_id), list(ds))


def field_stats(session: Session) -> dict:
    """The board's `stats`: open visits by status, offers out, squads by duty status."""
    visits = dict(session.execute(select(Visit.status, func.count()).where(
        Visit.status.in_(("waiting", "offered", "assigned", "arrived"))).group_by(Visit.status)).all())
    squads = dict(session.execute(select(Team.status, func.count()).group_by(Team.status)).all())
    failed = session.execute(select(func.count()).select_from(Visit).where(Visit.status == "failed")).scalar_one()
    return {"visits": visits, "visits_failed": failed, "squads": squads,
            "offers_out": session.execute(select(func.count()).select_from(Assignment).where(
                Assignment.status == "offered")).scalar_one()}
