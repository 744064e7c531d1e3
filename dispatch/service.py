"""Use cases on leads. Services never commit: the request or the task that calls them does. The one
exception is intake (`take_lead`): its answer must follow its commit, so the group writer's statement
commits each lead (autocommit) and a rejection is recorded at once; `take_batch` runs in its caller's
transaction."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NoReturn

from sqlalchemy import column, func, or_, select, true, tuple_
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Session

from dispatch import events, repository
from dispatch.actions import start_ladder
from dispatch.enums import Flag, LeadStatus, Response, can_transition
from dispatch.models import AccessLog, Lead, LeadEvent, Rejection
from dispatch.placement import LeadPlacement, place_lead
from dispatch.tiering import LeadFacts, Policy, age_on, tier_lead
from dispatch.validation import CENTER_TZ, mask_id, mask_phone, validate_lead
from dispatch.visits import request_visit
from geo.geocode import Geocoded, Geocoder, geocode_addresses
from service.core.auth import CENTER_ROLES, SQUAD_ROLES, Principal, Role
from service.core.errors import (
    BadRequest,
    Conflict,
    NotFound,
    ValidationFailed,
    field_errors,
)
from service.core.params import BIGINT_MAX

# ---------------------------------------------------------------- intake (接收)


def _key_of(raw: object) -> tuple[str | None, str | None]:
    if isinstance(raw, dict):
        s, i = raw.get("source"), raw.get("source_id")
        return (s if isinstance(s, str) else None), (i if isinstance(i, str) else None)
    return None, None


@dataclass(frozen=True, slots=True)
class Taken:
    id: int
    created: bool
    flags: list[str]


async def take_lead(writer: repository.GroupWriter, raw: object, actor: str, storable: bool = False) -> Taken:
    """Validate and store one pushed lead (committed on return); a hard defect, or a value
    PostgreSQL refuses, is recorded as a rejection and raised as 422 (ValidationFailed).
    `storable`: as `validate_lead`'s."""
    checked = validate_lead(raw, storable)
    if checked.lead is None:
        await _reject(writer, actor, raw, field_errors(checked.errors))
    stored = await writer.insert(repository.lead_row(checked.lead, checked.flags), actor)
    if isinstance(stored, repository.Refused):  # validation missed it; PostgreSQL did not
        await _reject(writer, actor, raw, stored.errors)
    lead_id, created = stored
    return Taken(lead_id, created, checked.flags)


async def _reject(writer: repository.GroupWriter, actor: str, raw: object, errors: list[dict]) -> NoReturn:
    async with writer.pool.acquire() as conn:
        await repository.insert_rejections(conn, actor, [(*_key_of(raw), errors)])
    raise ValidationFailed(errors)


async def take_batch(conn, items: list, actor: str, storable: bool = False) -> tuple[list[dict], list[int]]:
    """Each lead on its own: one bad lead never fails the others. → (results, ids of new leads).
    The caller wraps this in one transaction. `storable`: as `validate_lead`'s."""
    results: list[dict] = [{} for _ in items]
    accepted, rejections = [], []  # (index, checked) of valid leads; rejections as recorded
    for i, c in enumerate(validate_lead(x, storable) for x in items):
        if c.lead is None:
            errors = field_errors(c.errors)
            results[i] = {"index": i, "status": "rejected", "errors": errors}
            rejections.append((*_key_of(items[i]), errors))
        else:
            accepted.append((i, c))
    stored = await repository.insert_leads(conn, [repository.lead_row(c.lead, c.flags) for _i, c in accepted],
                                           [actor] * len(accepted))
    new_ids = []
    for (i, c), result in zip(accepted, stored):
        if isinstance(result, repository.Refused):  # validation missed it; PostgreSQL did not
            results[i] = {"index": i, "status": "rejected", "errors": result.errors}
            rejections.append((*_key_of(items[i]), result.errors))
            continue
        lead_id, created = result
        results[i] = {"index": i, "status": "accepted" if created else "duplicate", "id": lead_id,
                      "flags": c.flags}
        if created:
            new_ids.append(lead_id)
    await repository.insert_rejections(conn, actor, rejections)
    return results, new_ids


# ---------------------------------------------------------------- reading leads


def _iso(t: datetime | None) -> str | None:
    """Times go out in the center's zone (+08:00), as the contract shows them."""
    return t.astimezone(CENTER_TZ).isoformat() if t else None


def _placement(lead: Lead) -> dict | None:
    if lead.placed_by is None:
        return None
    out = {"lon": lead.lon, "lat": lead.lat, "beat_code": lead.beat_code, "street_code": lead.street_code,
           "in_jurisdiction": lead.in_jurisdiction, "placed_by": lead.placed_by}
    if lead.placement_reason:
        out["reason"] = lead.placement_reason
    return out


def lead_summary(lead: Lead) -> dict:
    """The masked shape used in lists, the queue and the screen."""
    return {"id": lead.id, "source": lead.source, "source_id": lead.source_id, "pushed_at": _iso(lead.pushed_at),
            "received_at": _iso(lead.received_at), "warning_type": lead.warning_type,
            "fraud_type": lead.fraud_type, "risk_level": lead.risk_level, "status": lead.status,
            "tier": lead.tier, "deadlines": (lead.tier_detail or {}).get("deadlines"),
            "subject": {"phone": mask_phone(lead.phone), "name": lead.name, "id_number": mask_id(lead.id_number),
                        "residency": lead.residency},
            "beat_code": lead.beat_code, "street_code": lead.street_code, "in_jurisdiction": lead.in_jurisdiction,
            "flags": lead.flags, "outcome": lead.outcome, "assigned_team": lead.assigned_team,
            "signed_at": _iso(lead.signed_at), "processing_failed": Flag.processing_failed in lead.flags}


def _visible_subject(lead: Lead, who: Principal) -> dict:
    # Auxiliary officers and grid workers are not police: no ID numbers (domain.md, privacy).
    id_number = lead.id_number if who.role in CENTER_ROLES or who.role == Role.police else None
    return {"phone": lead.phone, "name": lead.name, "id_number": id_number, "residency": lead.residency}


async def read_lead(session: AsyncSession, lead_id: int, who: Principal) -> dict:
    """The full record for center roles and the squad assigned to it; every such read is audited."""
    lead = await session.get(Lead, lead_id)
    if lead is None or (who.role in SQUAD_ROLES and (not who.team_code or lead.assigned_team != who.team_code)):
        raise NotFound(f"lead {lead_id} not found")
    events = (await session.execute(select(LeadEvent).where(LeadEvent.lead_id == lead_id)
                                    .order_by(LeadEvent.id))).scalars()
    session.add(AccessLog(actor=who.name, role=who.role, lead_id=lead_id, what="lead.detail"))
    location = None
    if lead.loc_lon is not None or lead.loc_address is not None:
        location = {"lon": lead.loc_lon, "lat": lead.loc_lat, "crs": lead.loc_crs,
                    "accuracy_m": lead.loc_accuracy_m, "kind": lead.loc_kind, "address": lead.loc_address}
    return {
        **lead_summary(lead), "subject": _visible_subject(lead, who), "fraud_type_raw": lead.fraud_type_raw,
        "ongoing": lead.ongoing, "counterpart": lead.counterpart,
        "amount_cny": float(lead.amount_cny) if lead.amount_cny is not None else None,
        "location": location, "placement": _placement(lead), "tier": lead.tier_detail,
        "transfer": {"to": lead.transfer_to, "reason": lead.transfer_reason} if lead.transfer_reason else None,
        "signed_at": _iso(lead.signed_at), "signed_by": lead.signed_by, "closed_at": _iso(lead.closed_at),
        "attempts": lead.attempts, "last_error": lead.last_error,
        "timeline": [{"at": _iso(e.at), "actor": e.actor, "kind": e.kind, "data": e.data} for e in events],
    }


def _cursor(lead_id: int) -> str:
    return base64.urlsafe_b64encode(str(lead_id).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        lead_id = int(base64.urlsafe_b64decode(cursor.encode()).decode())
    except (ValueError, UnicodeDecodeError):
        lead_id = 0
    if not 1 <= lead_id <= BIGINT_MAX:  # a number no id column holds is no cursor of ours either
        raise BadRequest([{"field": "cursor", "message": "not a cursor this API gave out"}])
    return lead_id


@dataclass(frozen=True, slots=True)
class LeadFilter:
    status: str | None = None
    tier: str | None = None
    street: str | None = None
    beat: str | None = None
    source: str | None = None
    fraud_type: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    failed: bool | None = None


async def list_leads(session: AsyncSession, f: LeadFilter, who: Principal, limit: int,
                     cursor: str | None) -> dict:
    """Newest first, keyset-paged by id; phones and ID numbers masked."""
    q = select(Lead).order_by(Lead.id.desc()).limit(limit + 1)
    for attr, value in ((Lead.status, f.status), (Lead.tier, f.tier), (Lead.street_code, f.street),
                        (Lead.beat_code, f.beat), (Lead.source, f.source), (Lead.fraud_type, f.fraud_type)):
        if value is not None:
            q = q.where(attr == value)
    if f.since:
        q = q.where(Lead.received_at >= f.since)
    if f.until:
        q = q.where(Lead.received_at < f.until)
    if f.failed is not None:
        has_flag = Lead.flags.contains([Flag.processing_failed.value])
        q = q.where(has_flag if f.failed else ~has_flag)
    if who.role in SQUAD_ROLES:  # a squad sees its own work only
        q = q.where(Lead.assigned_team == (who.team_code or ""))
    if cursor:
        q = q.where(Lead.id < _decode_cursor(cursor))
    leads = list((await session.execute(q)).scalars())
    more = len(leads) > limit
    leads = leads[:limit]
    return {"items": [lead_summary(x) for x in leads], "next_cursor": _cursor(leads[-1].id) if more else None}


async def list_rejections(session: AsyncSession, source: str | None, since: datetime | None,
                          until: datetime | None, limit: int) -> dict:
    """Rejected pushes, newest first, with counts by field so a bad feed shows at a glance."""
    where = []
    if source:
        where.append(Rejection.source == source)
    if since:
        where.append(Rejection.at >= since)
    if until:
        where.append(Rejection.at < until)
    rows = (await session.execute(select(Rejection).where(*where).order_by(Rejection.id.desc())
                                  .limit(limit))).scalars()
    total = (await session.execute(select(func.count()).select_from(Rejection).where(*where))).scalar_one()
    elements = func.jsonb_array_elements(Rejection.errors).table_valued(column("value", JSONB)).lateral("e")
    field = elements.c.value["field"].astext
    by_field = dict((await session.execute(
        select(field, func.count()).select_from(Rejection).join(elements, true()).where(*where)
        .group_by(field))).all())
    return {"total": total, "by_field": by_field,
            "items": [{"id": r.id, "at": _iso(r.at), "actor": r.actor, "source": r.source,
                       "source_id": r.source_id, "errors": r.errors} for r in rows]}


# ---------------------------------------------------------------- place and tier (worker side)


def _earlier_warnings(session: Session, lead: Lead) -> tuple[int, int]:
    """How often the same person (phone or ID number) was warned before this lead: (in the 7 days
    before, in the 30 days before). One indexed query for both."""
    who = [c == v for c, v in ((Lead.phone, lead.phone), (Lead.id_number, lead.id_number)) if v]
    if not who:
        return 0, 0
    q = select(func.count().filter(Lead.pushed_at > lead.pushed_at - timedelta(days=7)), func.count()).where(
        or_(*who), tuple_(Lead.pushed_at, Lead.id) < (lead.pushed_at, lead.id),
        Lead.pushed_at > lead.pushed_at - timedelta(days=30))
    week, month = session.execute(q).one()
    return week, month


def _event(lead: Lead, actor: str, kind: str, data: dict) -> LeadEvent:
    return LeadEvent(lead_id=lead.id, actor=actor, kind=kind, data=data)


def _move(lead: Lead, to: LeadStatus) -> None:
    if not can_transition(lead.status, to):
        raise Conflict(f"lead {lead.id} is {lead.status}; it cannot become {to}")
    lead.status = to


def place_and_tier(session: Session, lead: Lead, placement_of, policy: Policy, actor: str = "worker") -> None:
    """Placed → tiered, or transferred when the person is outside the district (管辖外移交).
    `placement_of(lead) -> LeadPlacement`. Writes one audit event per change."""
    p: LeadPlacement = placement_of(lead)
    lead.lon, lead.lat, lead.beat_code, lead.street_code = p.lon, p.lat, p.beat_code, p.street_code
    lead.in_jurisdiction, lead.placed_by, lead.placement_reason = p.in_jurisdiction, p.placed_by, p.reason
    session.add(_event(lead, actor, "placed", p.as_json()))
    warned_7d, warned_30d = _earlier_warnings(session, lead)
    facts = LeadFacts(warning_type=lead.warning_type, fraud_type=lead.fraud_type, risk_level=lead.risk_level,
                      residency=lead.residency, in_jurisdiction=p.in_jurisdiction,
                      age=age_on(lead.id_number, lead.pushed_at.date()), ongoing=lead.ongoing,
                      warned_within_7d=lead.risk_level == 3 and warned_7d > 0, warned_30d=warned_30d)
    decision = tier_lead(facts, policy, lead.received_at.astimezone(CENTER_TZ))
    lead.tier, lead.tier_detail = decision.tier, decision.as_json()
    lead.updated_at = func.now()
    if p.in_jurisdiction is False:
        _move(lead, LeadStatus.transferred)
        lead.transfer_reason = "out_of_jurisdiction"
        session.add(_event(lead, actor, "transferred", {"reason": "out_of_jurisdiction", "to": None,
                                                        "tier": decision.tier}))
    else:
        _move(lead, LeadStatus.tiered)
        session.add(_event(lead, actor, "tiered", decision.as_json()))
        if Response.visit in decision.response: request_visit(session, lead, "policy", actor=actor)
        start_ladder(session, lead, decision, policy, actor)  # deadline rows, first SMS, call queue
    events.board(session, "lead.updated", {"lead_id": lead.id, "status": lead.status, "tier": lead.tier,
                                           "beat_code": lead.beat_code, "street_code": lead.street_code})


def record_processing_failure(session: Session, lead: Lead, error: str, max_attempts: int,
                              actor: str = "worker") -> bool:
    """One more failed attempt at placing and tiering `lead` (its own changes already rolled back).
    → whether processing gives up on it now: flagged processing_failed, with an audit event, so the
    center sees it (GET /leads?failed=true) and the reconciler stops resending it."""
    lead.attempts = (lead.attempts or 0) + 1
    lead.last_error = error[:1000]
    lead.updated_at = func.now()
    if lead.attempts < max_attempts or Flag.processing_failed in lead.flags:
        return False
    lead.flags = [*lead.flags, Flag.processing_failed.value]
    session.add(_event(lead, actor, "processing_failed", {"attempts": lead.attempts, "error": lead.last_error}))
    return True


def placement_for(index, district_code: str, geocoded: dict[str, Geocoded] | None = None):
    """`placement_of(lead)` for `place_and_tier`; `geocoded`: address → answer, asked beforehand
    (`geocode_pending`), so no geocoder call happens while a lead is locked."""
    geocoded = geocoded or {}

    def placement_of(lead: Lead) -> LeadPlacement:
        return place_lead(lead.loc_lon, lead.loc_lat, lead.loc_crs, lead.id_number, index, district_code,
                          geocoded.get(lead.loc_address) if lead.loc_address else None)
    return placement_of


def geocode_pending(session: Session, ids: list[int], geocoder: Geocoder | None) -> dict[str, Geocoded]:
    """Geocode the addresses of the address-only leads among `ids` still `received`, before any
    is locked; answers are cached and committed here (the cache is not part of the lead's work)."""
    addresses = session.execute(select(Lead.loc_address).where(
        Lead.id.in_(ids), Lead.status == "received", Lead.loc_address.is_not(None),
        Lead.loc_lon.is_(None)).distinct()).scalars().all()
    if not addresses:
        session.rollback()
        return {}
    out = geocode_addresses(session, addresses, geocoder)
    session.commit()
    return out
