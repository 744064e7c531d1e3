"""A person's record (一人一档) across leads: every warning, call, SMS, visit, callback and case
(practice: a victim visited 11 times and called 13 times was defrauded anyway — count per person).
The person is the one the workers linked by phone and ID number (dispatch/outcomes/linking.py);
`POST /people/history` finds them by one identifier, `GET /people/{id}` by their id."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import text

from dispatch.access import stats_district
from dispatch.identity import mask_id, mask_phone, normalize_phone
from dispatch.models import AccessLog
from dispatch.outcomes.cases import case_public, normalize_id_number
from dispatch.outcomes.linking import masked
from dispatch.person import fold_summaries, summary_query
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


def _plain(row, masked: bool = False) -> dict:
    out = {}
    for k, v in row._mapping.items():
        if isinstance(v, datetime):
            v = iso(v)
        elif hasattr(v, "as_tuple"):  # Decimal: the money columns
            v = cny(v)
        out[k] = v
    if masked and "phone" in out:
        out["phone"], out["id_number"] = mask_phone(out["phone"]), mask_id(out["id_number"])
    return out


async def _identifiers(session, person_id: int) -> list[dict]:
    rows = (await session.execute(text(
        "SELECT kind, value, lead_id, created_at FROM person_identifier WHERE person_id = :p ORDER BY id"),
        {"p": person_id})).all()
    return [{"kind": r.kind, "value": r.value, "lead_id": r.lead_id, "since": iso(r.created_at)} for r in rows]


async def _history(session, person_id: int | None, keys: list[tuple[str, str]], who: Principal, *, what: str,
                   masked: bool) -> dict:
    """Every lead linked to the person and every lead carrying one of their identifiers not linked to
    anyone yet (no person: every lead carrying the identifiers, e.g. an ID number failing its check),
    with their calls, SMS, visits, callbacks and cases."""
    phones = [v for k, v in keys if k == "phone"]
    ids = [x for k, v in keys if k == "id_number" for x in (v, v.lower())]
    leads = (await session.execute(text(
        "SELECT id, source, source_id, pushed_at, received_at, warning_type, fraud_type, risk_level, phone, name, "
        "id_number, status, tier, beat_code, street_code, assigned_team, outcome, signed_at, closed_at, loss_cny, "
        "saved_cny, person_id, merged_into FROM lead WHERE (person_id = :p OR ((phone = ANY(CAST(:phones AS text[])) "
        "OR id_number = ANY(CAST(:ids AS text[]))) AND (person_id IS NULL OR CAST(:p AS bigint) IS NULL))) "
        "AND (CAST(:district AS text) IS NULL OR district_code = CAST(:district AS text)) "
        "ORDER BY pushed_at, id"),  # a district's people: its own leads of the person
        {"p": person_id, "phones": phones, "ids": ids, "district": stats_district(who)})).all()
    lead_ids = [r.id for r in leads]

    async def rows(sql: str) -> list[dict]:
        if not lead_ids:
            return []
        return [_plain(r) for r in (await session.execute(text(sql), {"ids": lead_ids})).all()]

    calls = await rows("SELECT id, lead_id, at, actor, result, outcome, note FROM call_attempt "
                       "WHERE lead_id = ANY(:ids) ORDER BY at, id")
    sms = await rows("SELECT id, lead_id, created_at, sent_at, status, receipt_at FROM sms_message "
                     "WHERE purpose = 'warning' AND lead_id = ANY(:ids) ORDER BY created_at, id")
    visits = await rows("SELECT v.id, v.lead_id, v.reason, v.requested_at, v.status, v.team_code, v.done_at, "
                        "v.met_in_person, v.outcome, (SELECT min(arrived_at) FROM assignment a WHERE a.visit_id = v.id) "
                        "AS arrived_at, (SELECT count(arrived_at) FROM assignment a WHERE a.visit_id = v.id) "
                        "AS arrivals FROM visit v WHERE v.lead_id = ANY(:ids) "
                        "ORDER BY v.requested_at, v.id")
    callbacks = await rows("SELECT id, lead_id, attempt, due_at, done_at, actor, result, loss_cny, note FROM callback "
                           "WHERE lead_id = ANY(:ids) ORDER BY due_at, id")
    cases = (await session.execute(text(
        "SELECT c.*, l.id AS lead_id, l.source, l.source_id FROM case_report c LEFT JOIN lead l "
        "ON l.id = c.post_warning_lead_id WHERE c.victim_phone = ANY(CAST(:phones AS text[])) "
        "OR c.victim_id_number = ANY(CAST(:ids AS text[])) OR c.post_warning_lead_id = ANY(CAST(:leads AS bigint[])) "
        "ORDER BY c.reported_at, c.id"), {"phones": phones, "ids": [v for k, v in keys if k == "id_number"],
                                          "leads": lead_ids})).all()
    for lead_id in lead_ids:  # a read of each lead's subject (PIPL Art. 51)
        session.add(AccessLog(actor=who.name, role=who.role, lead_id=lead_id, what=what))
    arrivals = sum(v["arrivals"] for v in visits)
    warnings = sum(1 for r in leads if r.merged_into is None)
    return {"leads": [_plain(r, masked) for r in leads], "calls": calls, "sms": sms, "visits": visits,
            "callbacks": callbacks, "cases": [case_public(c, masked=masked) for c in cases],
            "totals": {"warnings": warnings, "leads": len(leads), "merged": len(leads) - warnings,
                       "calls": len(calls), "sms": len(sms), "visits": len(visits), "visits_on_scene": arrivals,
                       "callbacks": len(callbacks),
                       "callbacks_done": sum(1 for c in callbacks if c["result"] in ("safe", "defrauded")),
                       "cases": len(cases),
                       "attempts": len(calls) + sum(1 for s in sms if s["status"] in ("sent", "delivered"))
                       + arrivals}}


async def history(session, person: tuple[str, str], who: Principal) -> dict:
    """The whole person the identifier belongs to (every lead linked to them, not only those that
    carry this number); the numbers in full (the caller gave one; center roles), each lead's read
    audited (`person.history`)."""
    kind, value = person
    person_id = (await session.execute(text(
        "SELECT person_id FROM person_identifier WHERE kind = :k AND value = :v"), {"k": kind, "v": value})).scalar()
    idents = await _identifiers(session, person_id) if person_id is not None else []
    keys = [(i["kind"], i["value"]) for i in idents] or [person]
    found = await _history(session, person_id, keys, who, what="person.history", masked=False)
    return {"person": {kind: value, "id": person_id, "identifiers": idents}, **found}


async def page(session, person_id: int, who: Principal, now: datetime) -> dict | None:
    """GET /people/{id}: the person (a merged id answers with the person it became), identifiers
    masked, "warned N times in 30 days, M visits", and the whole history masked as lists are
    (`person.page` in the access log per lead). None: no such person."""
    asked, seen = person_id, set()
    while True:
        row = (await session.execute(text("SELECT id, created_at, merged_into FROM person WHERE id = :p"),
                                     {"p": person_id})).first()
        if row is None or person_id in seen:
            return None
        if row.merged_into is None:
            break
        seen.add(person_id)
        person_id = row.merged_into
    idents = await _identifiers(session, person_id)
    keys = [(i["kind"], i["value"]) for i in idents]
    merged_from = list((await session.execute(text(
        "SELECT id FROM person WHERE merged_into = :p ORDER BY id"), {"p": person_id})).scalars())
    splits = [{"split_id": r.id, "at": iso(r.at), "actor": r.actor, "reason": r.reason,
               "from": r.person_id, "into": r.new_person_id, "kind": r.kind,
               "identifier": masked(r.kind, r.value), "lead_ids": r.lead_ids}
              for r in (await session.execute(text(
                  "SELECT * FROM person_split WHERE person_id = :p OR new_person_id = :p ORDER BY id"),
                  {"p": person_id})).all()]
    summary = fold_summaries([person_id], (await session.execute(summary_query([person_id], now))).all())[person_id]
    found = await _history(session, person_id, keys, who, what="person.page", masked=True)
    for i in idents:
        i["value"] = masked(i["kind"], i["value"])
    return {"id": person_id, "requested_id": asked, "created_at": iso(row.created_at), "merged_from": merged_from,
            "identifiers": idents, "splits": splits, "person": summary, **found}
