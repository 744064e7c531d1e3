"""Case reports (发案) and post-warning matching (预警后发案).

A case is a post-warning case of a lead when the victim was the subject of that lead — the lead
carries the victim's phone or ID number (normalised), or belongs to the person (一人一档,
dispatch/outcomes/linking.py) one of them is linked to — and the lead was pushed in the 30 days
before the case was reported. When several leads qualify, the one about the same fraud type wins,
then the one placed in the case's beat, then the newest (a case is most plausibly the scam someone
was warned about); every one of them is a warning lead of the case (`warning_lead_ids`).

Matching is one set-based UPDATE, run when a case is stored and again when a lead of the same
person is placed (workers) or the person's records change (a merge, a split), so the order of
arrival never changes the result."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import orjson
from sqlalchemy import text

from dispatch.enums import FraudType
from dispatch.identity import mask_id, mask_phone, normalize_phone
from dispatch.outcomes import feedback
from service.core.clock import CENTER_TZ, iso
from service.core.errors import FieldError
from service.core.money import cny

POST_WARNING_DAYS = 30
MAX_CASE_ID = 128
MAX_LOSS = Decimal("1e12")  # Numeric(14, 2)
CASE_REJECTION_SOURCE = "case"  # rejections of case pushes, beside the lead sources
_ID = re.compile(r"\d{17}[\dX]|\d{15}", re.ASCII)
_FRAUD_TYPES = frozenset(FraudType)


def normalize_id_number(raw: str) -> str | None:
    """Spaces removed, a trailing x upper-cased; None if it is not shaped like an ID number."""
    s = re.sub(r"\s+", "", raw).upper()
    return s if _ID.fullmatch(s) else None


@dataclass(frozen=True, slots=True)
class CaseIn:
    case_id: str
    reported_at: datetime
    victim_phone: str | None
    victim_id_number: str | None
    fraud_type: str
    loss_cny: Decimal | None
    beat_code: str | None
    raw: dict


def _has_nul(v: object) -> bool:
    if isinstance(v, str):
        return "\x00" in v
    if isinstance(v, dict):
        return any(_has_nul(k) or _has_nul(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_nul(x) for x in v)
    return False


def validate_case(obj: object) -> tuple[CaseIn | None, list[FieldError]]:
    """One pushed case (the shape of cases.jsonl). All hard errors are collected; never raises."""
    if not isinstance(obj, dict):
        return None, [FieldError("", "body must be a JSON object")]
    errors: list[FieldError] = []
    if _has_nul(obj):
        return None, [FieldError("", "must not contain a NUL character")]
    case_id = obj.get("case_id")
    if not isinstance(case_id, str) or not case_id.strip() or len(case_id) > MAX_CASE_ID:
        errors.append(FieldError("case_id", "required" if case_id is None else
                                 f"must be a non-empty string of at most {MAX_CASE_ID} characters"))
    reported_at = None
    raw_time = obj.get("reported_at")
    if isinstance(raw_time, str):
        try:
            reported_at = datetime.fromisoformat(raw_time)
            if reported_at.tzinfo is None:
                reported_at = reported_at.replace(tzinfo=CENTER_TZ)
            if not 1900 <= reported_at.year <= 9999 or not 1900 <= reported_at.astimezone(CENTER_TZ).year <= 9998:
                raise ValueError
        except (ValueError, OverflowError):
            errors.append(FieldError("reported_at", "not an ISO 8601 time"))
            reported_at = None
    else:
        errors.append(FieldError("reported_at", "required" if raw_time is None else "must be an ISO 8601 string"))
    victim = obj.get("victim")
    phone = id_number = None
    if not isinstance(victim, dict):
        errors.append(FieldError("victim", "required: an object with phone and/or id_number"))
    else:
        p, i = victim.get("phone"), victim.get("id_number")
        if p is not None:
            if not isinstance(p, str) or (phone := normalize_phone(p)) is None:
                errors.append(FieldError("victim.phone", "not a valid mainland mobile or landline number"))
        if i is not None:
            if not isinstance(i, str) or (id_number := normalize_id_number(i)) is None:
                errors.append(FieldError("victim.id_number", "not an 18- or 15-character ID number"))
        if p is None and i is None:
            errors.append(FieldError("victim.phone", "the victim needs a phone or an ID number"))
    fraud_type = obj.get("fraud_type")
    if fraud_type is None or (isinstance(fraud_type, str) and fraud_type not in _FRAUD_TYPES):
        fraud_type = FraudType.other.value  # as for leads: unknown types are kept as `other`
    elif not isinstance(fraud_type, str):
        errors.append(FieldError("fraud_type", "must be a string"))
    loss = obj.get("loss_cny")
    loss_cny = None
    if loss is not None:
        if type(loss) not in (int, float) or not math.isfinite(loss):
            errors.append(FieldError("loss_cny", "must be a number or null"))
        elif loss < 0:
            errors.append(FieldError("loss_cny", "must not be negative"))
        elif loss >= MAX_LOSS:
            errors.append(FieldError("loss_cny", "must be below 10^12"))
        else:
            loss_cny = Decimal(str(loss)).quantize(Decimal("0.01"))
    beat = obj.get("beat_code")
    if beat is not None and (not isinstance(beat, str) or len(beat) > 64):
        errors.append(FieldError("beat_code", "must be a string of at most 64 characters or null"))
    if errors:
        return None, errors
    return CaseIn(case_id.strip(), reported_at, phone, id_number, fraud_type, loss_cny, beat or None, obj), []


# The victim's leads pushed in the 30 days before the case (see the module docstring): `c` is the case
# row; one branch per way a lead is the victim's, each on its own index (phone, ID number in either
# case of x, the person's leads), so no plan depends on the tables' statistics.
_WINDOW = f"l.pushed_at < c.reported_at AND l.pushed_at >= c.reported_at - interval '{POST_WARNING_DAYS} days'"
_WARNINGS = f"""
    SELECT l.id, l.fraud_type, l.beat_code, l.pushed_at FROM lead l
    WHERE l.phone = c.victim_phone AND {_WINDOW}
    UNION SELECT l.id, l.fraud_type, l.beat_code, l.pushed_at FROM lead l
    WHERE l.id_number IN (c.victim_id_number, lower(c.victim_id_number)) AND {_WINDOW}
    UNION SELECT l.id, l.fraud_type, l.beat_code, l.pushed_at FROM person_identifier i
    JOIN lead l ON l.person_id = i.person_id
    WHERE ((i.kind = 'phone' AND i.value = c.victim_phone) OR (i.kind = 'id_number' AND i.value = c.victim_id_number))
      AND {_WINDOW}"""
# The best of them.
_BEST_LEAD = f"""(
    SELECT w.id FROM ({_WARNINGS}) w
    ORDER BY (w.fraud_type = c.fraud_type) DESC, coalesce(w.beat_code = c.beat_code, false) DESC,
             w.pushed_at DESC, w.id DESC
    LIMIT 1)"""

_UPSERT = text("""
INSERT INTO case_report (case_id, reported_at, victim_phone, victim_id_number, fraud_type, loss_cny, beat_code, raw)
SELECT * FROM unnest(CAST(:case_id AS text[]), CAST(:reported_at AS timestamptz[]), CAST(:phone AS text[]),
                     CAST(:id_number AS text[]), CAST(:fraud_type AS text[]), CAST(:loss AS numeric[]),
                     CAST(:beat AS text[]), CAST(:raw AS jsonb[]))
ON CONFLICT (case_id) DO NOTHING
RETURNING case_id""")

# Only cases whose match changes are updated; the lead they now point to gets a timeline event,
# the case its review (倒查, dispatch/outcomes/reviews.py), and the sources of that lead's work their
# feedback (case filed: dispatch/outcomes/feedback.py), all in the statement that matches.
_REVIEW_AND_FEEDBACK = """,
rv AS (
    INSERT INTO case_review (case_report_id, lead_id)
    SELECT id, post_warning_lead_id FROM m WHERE post_warning_lead_id IS NOT NULL
    ON CONFLICT (case_report_id) DO UPDATE SET lead_id = excluded.lead_id, matched_at = now()),
fb AS (
    INSERT INTO feedback_delivery (source, lead_id, event, payload)
    SELECT l.source, l.id, 'case_filed', jsonb_build_object(
        'event', 'case_filed', 'source', l.source, 'source_id', l.source_id, 'lead_id', l.id,
        'work_lead_id', m.post_warning_lead_id, 'at', now(),
        'data', jsonb_build_object('case_id', m.case_id, 'reported_at', m.reported_at))::text
    FROM m JOIN lead l ON l.id = m.post_warning_lead_id OR l.merged_into = m.post_warning_lead_id
    JOIN feedback_source f ON f.source = l.source
    WHERE NOT l.historic ORDER BY m.id, l.id)"""

_CHANGED_EVENTS = _REVIEW_AND_FEEDBACK + """
INSERT INTO lead_event (lead_id, actor, kind, data)
SELECT post_warning_lead_id, CAST(:actor AS text), 'post_warning_case',
       jsonb_build_object('case_id', case_id, 'reported_at', reported_at)
FROM m WHERE post_warning_lead_id IS NOT NULL"""

_MATCH_CASES = text(f"""
WITH m AS (
    UPDATE case_report c SET post_warning_lead_id = {_BEST_LEAD}
    WHERE c.case_id = ANY(CAST(:ids AS text[])) AND c.post_warning_lead_id IS DISTINCT FROM {_BEST_LEAD}
    RETURNING c.id, c.case_id, c.reported_at, c.post_warning_lead_id)
{_CHANGED_EVENTS}""")

# The cases of some people: by the victim's phone or ID number, or matched to one of their leads.
_MATCH_PEOPLE = text(f"""
WITH m AS (
    UPDATE case_report c SET post_warning_lead_id = {_BEST_LEAD}
    WHERE (c.victim_phone = ANY(CAST(:phones AS text[])) OR c.victim_id_number = ANY(CAST(:id_numbers AS text[]))
           OR c.post_warning_lead_id = ANY(ARRAY(SELECT id FROM lead WHERE person_id = ANY(CAST(:persons AS bigint[])))))
      AND c.post_warning_lead_id IS DISTINCT FROM {_BEST_LEAD}
    RETURNING c.id, c.case_id, c.reported_at, c.post_warning_lead_id)
{_CHANGED_EVENTS}""")

# Raw SQL (for psycopg bulk loads): match every case not matched yet.
MATCH_UNMATCHED = f"UPDATE case_report c SET post_warning_lead_id = {_BEST_LEAD} WHERE c.post_warning_lead_id IS NULL"
REVIEW_MATCHED = ("INSERT INTO case_review (case_report_id, lead_id) SELECT id, post_warning_lead_id FROM case_report "
                  "WHERE post_warning_lead_id IS NOT NULL ON CONFLICT (case_report_id) DO NOTHING")

_ANSWERS = text("""
SELECT c.case_id, c.id, l.id AS lead_id, l.source, l.source_id FROM case_report c
LEFT JOIN lead l ON l.id = c.post_warning_lead_id WHERE c.case_id = ANY(CAST(:ids AS text[]))""")


def _params(cases: list[CaseIn]) -> dict:
    return {"case_id": [c.case_id for c in cases], "reported_at": [c.reported_at for c in cases],
            "phone": [c.victim_phone for c in cases], "id_number": [c.victim_id_number for c in cases],
            "fraud_type": [c.fraud_type for c in cases], "loss": [c.loss_cny for c in cases],
            "beat": [c.beat_code for c in cases], "raw": [orjson.dumps(c.raw).decode() for c in cases]}


def post_warning_of(row) -> dict | None:
    return None if row.lead_id is None else {"id": row.lead_id, "source": row.source, "source_id": row.source_id}


async def store_cases(session, cases: list[CaseIn], actor: str) -> dict[str, tuple[int, bool, dict | None]]:
    """Insert new cases (a case_id seen before is kept as it was) and (re)match them all.
    → {case_id: (row id, created, post_warning_of)}. The caller commits."""
    if not cases:
        return {}
    created = set((await session.execute(_UPSERT, _params(cases))).scalars())
    ids = list(dict.fromkeys(c.case_id for c in cases))
    if (await session.execute(_MATCH_CASES, {"ids": ids, "actor": actor})).rowcount:
        await feedback.sent_with_commit(session)
    rows = (await session.execute(_ANSWERS, {"ids": ids})).all()
    return {r.case_id: (r.id, r.case_id in created, post_warning_of(r)) for r in rows}


_READ = text(f"""
SELECT c.*, l.id AS lead_id, l.source, l.source_id,
       coalesce(l.person_id, (SELECT i.person_id FROM person_identifier i
                              WHERE (i.kind = 'phone' AND i.value = c.victim_phone)
                                 OR (i.kind = 'id_number' AND i.value = c.victim_id_number)
                              ORDER BY i.kind DESC LIMIT 1)) AS person_id,
       ARRAY(SELECT w.id FROM ({_WARNINGS}) w ORDER BY w.pushed_at, w.id) AS warning_lead_ids
FROM case_report c LEFT JOIN lead l ON l.id = c.post_warning_lead_id WHERE c.case_id = :id""")


async def read_case(session, case_id: str) -> dict | None:
    """The case with its match, the victim's person (that of the matched lead, else the person the
    victim's phone, then ID number, is linked to) and every warning lead of the 30 days before."""
    row = (await session.execute(_READ, {"id": case_id})).first()
    if row is None:
        return None
    return {**case_public(row), "person_id": row.person_id, "warning_lead_ids": list(row.warning_lead_ids)}


def case_public(row, *, masked: bool = False) -> dict:
    phone, idn = row.victim_phone, row.victim_id_number
    if masked:
        phone, idn = mask_phone(phone), mask_id(idn)
    return {"id": row.id, "case_id": row.case_id, "reported_at": iso(row.reported_at),
            "victim": {"phone": phone, "id_number": idn}, "fraud_type": row.fraud_type,
            "loss_cny": cny(row.loss_cny), "beat_code": row.beat_code,
            "post_warning_of": post_warning_of(row)}


_ANY_VICTIM = text("""
SELECT 1 FROM case_report WHERE victim_phone = ANY(CAST(:phones AS text[]))
                             OR victim_id_number = ANY(CAST(:id_numbers AS text[])) LIMIT 1""")


def rematch_people(session, person_ids: list[int], identifiers: list[tuple[str, str]], actor: str = "worker",
                   fresh: bool = False) -> int:
    """Sync: re-match every case of these people (their identifiers: (kind, value) pairs, ID numbers
    upper-case) after one of their leads was placed or their records changed (a merge, a split).
    `fresh`: a person first known now, with no lead a case could point to yet — only a case naming
    one of the identifiers as its victim's can match, looked for first with a plain indexed read (the
    matching statement costs more to plan than to run). → timeline events written (cases now matched)."""
    phones = [v for k, v in identifiers if k == "phone"]
    id_numbers = [v.upper() for k, v in identifiers if k == "id_number"]
    if not person_ids and not phones and not id_numbers:
        return 0
    if fresh and session.execute(_ANY_VICTIM, {"phones": phones, "id_numbers": id_numbers}).first() is None:
        return 0
    n = session.execute(_MATCH_PEOPLE, {"phones": phones, "id_numbers": id_numbers, "persons": person_ids,
                                        "actor": actor}).rowcount
    if n:
        feedback.sent_with_commit_sync(session)
    return n
