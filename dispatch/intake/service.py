"""Intake (接收) and reading leads. Services never commit: the request or the task that calls them
does. The one exception is intake itself (`take_lead`): its answer must follow its commit, so the
group writer's statement commits each lead (autocommit) and a rejection is recorded at once;
`take_batch` runs in its caller's transaction. Who may read which lead is `dispatch.access`'s."""
from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

from sqlalchemy import column, func, select, true
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from dispatch.access import audited, may_see_id_number, owner_is, readable_leads
from dispatch.enums import Flag
from dispatch.identity import mask_id, mask_phone
from dispatch.intake import repository
from dispatch.intake.validation import validate_lead
from dispatch.models import Lead, LeadEvent, Rejection
from dispatch.person import fold_summaries, summary_query
from service.core import clock
from service.core.auth import Principal
from service.core.clock import iso
from service.core.db import acquire
from service.core.errors import BadRequest, NotFound, ValidationFailed, field_errors
from service.core.money import cny
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
    async with acquire(writer.pool) as conn:
        await repository.insert_rejections(conn, actor, [(*_key_of(raw), errors)])
    raise ValidationFailed(errors)


async def take_batch(conn, items: list, actor: str, storable: bool = False,
                     refuse=None) -> tuple[list[dict], list[int]]:
    """Each lead on its own: one bad lead never fails the others. → (results, ids of new leads).
    The caller wraps this in one transaction. `storable`: as `validate_lead`'s. `refuse(lead)`: the
    field error when the caller may not push that lead (an API key bound to other sources), else None."""
    results: list[dict] = [{} for _ in items]
    accepted, rejections = [], []  # (index, checked) of valid leads; rejections as recorded
    for i, x in enumerate(items):
        if refuse is not None and isinstance(x, dict) and (refused := refuse(x)):
            results[i] = {"index": i, "status": "rejected", "errors": [refused]}
            rejections.append((*_key_of(x), [refused]))
            continue
        c = validate_lead(x, storable)
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


def _placement(lead: Lead) -> dict | None:
    if lead.placed_by is None:
        return None
    out = {"lon": lead.lon, "lat": lead.lat, "beat_code": lead.beat_code, "street_code": lead.street_code,
           "district_code": lead.district_code, "in_jurisdiction": lead.in_jurisdiction, "placed_by": lead.placed_by}
    if lead.placement_reason:
        out["reason"] = lead.placement_reason
    return out


def lead_summary(lead: Lead, who: Principal) -> dict:
    """The masked shape used in lists, the queue and the screen: no ID number at all for those who
    may not see one (auxiliary officers, grid workers), a masked one for the others."""
    return {"id": lead.id, "source": lead.source, "source_id": lead.source_id, "pushed_at": iso(lead.pushed_at),
            "received_at": iso(lead.received_at), "warning_type": lead.warning_type,
            "fraud_type": lead.fraud_type, "risk_level": lead.risk_level, "status": lead.status,
            "tier": lead.tier, "deadlines": (lead.tier_detail or {}).get("deadlines"),
            "subject": {"phone": mask_phone(lead.phone), "name": lead.name, "id_number": mask_id(lead.id_number) if may_see_id_number(who) else None,
                        "residency": lead.residency},
            "beat_code": lead.beat_code, "street_code": lead.street_code, "district_code": lead.district_code,
            "in_jurisdiction": lead.in_jurisdiction,
            "flags": lead.flags, "outcome": lead.outcome, "assigned_team": lead.assigned_team,
            "signed_at": iso(lead.signed_at), "processing_failed": Flag.processing_failed in lead.flags,
            "person_id": lead.person_id, "merged_into": lead.merged_into}


def _visible_subject(lead: Lead, who: Principal) -> dict:
    id_number = lead.id_number if may_see_id_number(who) else None
    return {"phone": lead.phone, "name": lead.name, "id_number": id_number, "residency": lead.residency}


async def read_lead(session: AsyncSession, lead_id: int, who: Principal) -> dict:
    """The full record for center roles and the squad assigned to it; every such read is audited."""
    lead = (await session.execute(select(Lead).where(Lead.id == lead_id, readable_leads(who)))).scalar()
    if lead is None:  # another squad's lead does not exist for you
        raise NotFound(f"lead {lead_id} not found")
    events = (await session.execute(select(LeadEvent).where(LeadEvent.lead_id == lead_id)
                                    .order_by(LeadEvent.id))).scalars()
    audited(session, who, lead_id, "lead.detail")
    person = None
    if lead.person_id is not None:
        rows = (await session.execute(summary_query([lead.person_id], clock.now()))).all()
        person = fold_summaries([lead.person_id], rows)[lead.person_id]
    location = None
    if lead.loc_lon is not None or lead.loc_address is not None:
        location = {"lon": lead.loc_lon, "lat": lead.loc_lat, "crs": lead.loc_crs,
                    "accuracy_m": lead.loc_accuracy_m, "kind": lead.loc_kind, "address": lead.loc_address}
    return {
        **lead_summary(lead, who), "subject": _visible_subject(lead, who), "fraud_type_raw": lead.fraud_type_raw,
        "ongoing": lead.ongoing, "counterpart": lead.counterpart,
        "amount_cny": cny(lead.amount_cny),
        "location": location, "placement": _placement(lead), "tier": lead.tier_detail,
        "transfer": {"to": lead.transfer_to, "reason": lead.transfer_reason} if lead.transfer_reason else None,
        "signed_at": iso(lead.signed_at), "signed_by": lead.signed_by, "closed_at": iso(lead.closed_at),
        "attempts": lead.attempts, "last_error": lead.last_error, "person": person,
        "timeline": [{"at": iso(e.at), "actor": e.actor, "kind": e.kind, "data": e.data} for e in events],
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
    district: str | None = None  # owned by this district ("city": by the city center); within what `who` reads


async def list_leads(session: AsyncSession, f: LeadFilter, who: Principal, limit: int,
                     cursor: str | None) -> dict:
    """Newest first, keyset-paged by id; phones and ID numbers masked."""
    q = select(Lead).where(readable_leads(who)).order_by(Lead.id.desc()).limit(limit + 1)
    for attr, value in ((Lead.status, f.status), (Lead.tier, f.tier), (Lead.street_code, f.street),
                        (Lead.beat_code, f.beat), (Lead.source, f.source), (Lead.fraud_type, f.fraud_type)):
        if value is not None:
            q = q.where(attr == value)
    if f.since:
        q = q.where(Lead.received_at >= f.since)
    if f.until:
        q = q.where(Lead.received_at < f.until)
    if f.district is not None:
        q = q.where(owner_is(f.district))
    if f.failed is not None:
        has_flag = Lead.flags.contains([Flag.processing_failed.value])
        q = q.where(has_flag if f.failed else ~has_flag)
    if cursor:
        q = q.where(Lead.id < _decode_cursor(cursor))
    leads = list((await session.execute(q)).scalars())
    more = len(leads) > limit
    leads = leads[:limit]
    return {"items": [lead_summary(x, who) for x in leads], "next_cursor": _cursor(leads[-1].id) if more else None}


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
            "items": [{"id": r.id, "at": iso(r.at), "actor": r.actor, "source": r.source,
                       "source_id": r.source_id, "errors": r.errors} for r in rows]}
