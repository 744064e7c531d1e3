"""A person's history across leads: every warning, call, SMS, visit, callback and case (practice:
a victim visited 11 times and called 13 times was defrauded anyway — count per person)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from dispatch.access import stats_district
from dispatch.identity import normalize_phone
from dispatch.models import AccessLog
from dispatch.outcomes.cases import case_public, normalize_id_number
from service.core.auth import Principal
from service.core.clock import iso
from service.core.errors import ValidationFailed
from service.core.money import cny


def person_of(raw: object) -> tuple[str, str]:
    """{"phone"} or {"id_number"} (exactly one) → (kind, normalised number); 422 naming the field."""
    if not isinstance(raw, dict):
        raise ValidationFailed([{"field": "", "message": "body must be an object with phone or id_number"}])
    phone, idn = raw.get("phone"), raw.get("id_number")
    if (phone is None) == (idn is None):
        raise ValidationFailed([{"field": "phone", "message": "give exactly one of phone or id_number"}])
    if phone is not None:
        p = normalize_phone(phone) if isinstance(phone, str) and "\x00" not in phone else None
        if p is None:
            raise ValidationFailed([{"field": "phone", "message": "not a valid mainland mobile or landline number"}])
        return "phone", p
    i = normalize_id_number(idn) if isinstance(idn, str) else None
    if i is None:
        raise ValidationFailed([{"field": "id_number", "message": "not an 18- or 15-character ID number"}])
    return "id_number", i


def _plain(row) -> dict:
    out = {}
    for k, v in row._mapping.items():
        if isinstance(v, datetime):
            v = iso(v)
        elif hasattr(v, "as_tuple"):  # Decimal: the money columns
            v = cny(v)
        out[k] = v
    return out


_LEADS = {"phone": "phone = :v", "id_number": "id_number IN (:v, lower(:v))"}
_CASES = {"phone": "victim_phone = :v", "id_number": "victim_id_number = :v"}


async def history(session, person: tuple[str, str], who: Principal) -> dict:
    kind, value = person
    leads = (await session.execute(text(
        f"SELECT id, source, source_id, pushed_at, received_at, warning_type, fraud_type, risk_level, phone, name, "
        f"id_number, status, tier, beat_code, street_code, assigned_team, outcome, signed_at, closed_at, loss_cny, "
        f"saved_cny FROM lead WHERE {_LEADS[kind]} "
        f"AND (CAST(:district AS text) IS NULL OR district_code = CAST(:district AS text)) ORDER BY pushed_at, id"),
        {"v": value, "district": stats_district(who)})).all()  # a district's people: its own leads of the person
    ids = [r.id for r in leads]

    async def rows(sql: str) -> list[dict]:
        if not ids:
            return []
        return [_plain(r) for r in (await session.execute(text(sql), {"ids": ids})).all()]

    calls = await rows("SELECT id, lead_id, at, actor, result, outcome, note FROM call_attempt "
                       "WHERE lead_id = ANY(:ids) ORDER BY at, id")
    sms = await rows("SELECT id, lead_id, created_at, sent_at, status, receipt_at FROM sms_message "
                     "WHERE purpose = 'warning' AND lead_id = ANY(:ids) ORDER BY created_at, id")
    visits = await rows("SELECT v.id, v.lead_id, v.reason, v.requested_at, v.status, v.team_code, v.done_at, "
                        "v.met_in_person, v.outcome, (SELECT min(arrived_at) FROM assignment a WHERE a.visit_id = v.id) "
                        "AS arrived_at, (SELECT count(arrived_at) FROM assignment a WHERE a.visit_id = v.id) "
                        "AS arrivals FROM visit v WHERE v.lead_id = ANY(:ids) "
                        "ORDER BY v.requested_at, v.id")
    callbacks = await rows("SELECT id, lead_id, due_at, done_at, actor, result, loss_cny, note FROM callback "
                           "WHERE lead_id = ANY(:ids) ORDER BY due_at, id")
    cases = (await session.execute(text(
        f"SELECT c.*, l.id AS lead_id, l.source, l.source_id FROM case_report c LEFT JOIN lead l "
        f"ON l.id = c.post_warning_lead_id WHERE {_CASES[kind]} ORDER BY c.reported_at, c.id"), {"v": value})).all()
    for lead_id in ids:  # a full read of each lead's subject (PIPL Art. 51)
        session.add(AccessLog(actor=who.name, role=who.role, lead_id=lead_id, what="person.history"))
    arrivals = sum(v["arrivals"] for v in visits)
    return {"person": {kind: value}, "leads": [_plain(r) for r in leads], "calls": calls, "sms": sms,
            "visits": visits, "callbacks": callbacks, "cases": [case_public(c) for c in cases],
            "totals": {"warnings": len(leads), "calls": len(calls), "sms": len(sms), "visits": len(visits),
                       "visits_on_scene": arrivals, "callbacks": len(callbacks), "cases": len(cases),
                       "attempts": len(calls) + sum(1 for s in sms if s["status"] in ("sent", "delivered"))
                       + arrivals}}
