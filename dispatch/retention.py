"""Retention (PIPL Art. 19, 47): personal data is kept for as long as the work needs it and then
blanked. `purge` blanks the personal fields of leads closed (or handed over) longer ago than the
policy's `[retention] leads`, and of cases reported longer ago than `[retention] cases`; the
counts, times, places and outcomes the KPIs are computed from stay. What it blanked is written to
each lead's timeline (`personal_data_purged`), so it enters the audit chain like every other event;
the chain itself holds only masked numbers, so it still verifies."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlmodel import Session

from dispatch.timeline import record_many

# What counts as personal in each table (columns NOT NULL are blanked to '' rather than NULL).
LEAD_FIELDS = ("phone", "name", "id_number", "counterpart", "loc_lon", "loc_lat", "loc_address", "lon", "lat",
               "close_note")
_LEAD_SET = ("phone = NULL, name = NULL, id_number = NULL, counterpart = '{}'::jsonb, loc_lon = NULL, "
             "loc_lat = NULL, loc_address = NULL, lon = NULL, lat = NULL, close_note = NULL, "
             "flags = flags || '[\"purged\"]'::jsonb")
_RELATED = (
    "UPDATE sms_message SET to_phone = '', body = '', params = NULL WHERE lead_id = ANY(:ids)",
    "UPDATE sms_inbound SET from_phone = '', text = '' WHERE lead_id = ANY(:ids)",
    "UPDATE call_attempt SET note = NULL WHERE lead_id = ANY(:ids)",
    "UPDATE callback SET note = NULL WHERE lead_id = ANY(:ids)",
    "UPDATE assignment SET note = NULL WHERE lead_id = ANY(:ids)",
    "UPDATE family_contact SET subject_phone = NULL, subject_id_number = NULL, name = '', phone = '' "
    "WHERE lead_id = ANY(:ids)",
    "UPDATE stop_payment_request SET account = '', note = NULL WHERE lead_id = ANY(:ids)",
)


@dataclass
class Purged:
    leads: list[int] = field(default_factory=list)
    cases: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"leads": len(self.leads), "cases": len(self.cases)}


def due_leads(session: Session, before: datetime, limit: int) -> list[int]:
    """Closed or handed over before `before`, not purged yet (oldest first)."""
    return list(session.execute(text(
        "SELECT id FROM lead WHERE status IN ('closed', 'transferred') AND coalesce(closed_at, updated_at) < :b "
        "AND NOT flags @> '[\"purged\"]'::jsonb ORDER BY id LIMIT :n"), {"b": before, "n": limit}).scalars())


def purge(session: Session, now: datetime, leads_after: timedelta, cases_after: timedelta, *,
          limit: int = 10_000, dry_run: bool = False) -> Purged:
    """One batch (the caller commits and calls again while there is more)."""
    out = Purged(due_leads(session, now - leads_after, limit))
    out.cases = list(session.execute(text(
        "SELECT case_id FROM case_report WHERE reported_at < :b AND (victim_phone IS NOT NULL "
        "OR victim_id_number IS NOT NULL) ORDER BY id LIMIT :n"), {"b": now - cases_after, "n": limit}).scalars())
    if dry_run:
        return out
    kept = f"{leads_after.days}d"
    if out.leads:
        session.execute(text(f"UPDATE lead SET {_LEAD_SET} WHERE id = ANY(:ids)"), {"ids": out.leads})
        for sql in _RELATED:
            session.execute(text(sql), {"ids": out.leads})
        record_many(session, [{"lead_id": i, "actor": "retention", "kind": "personal_data_purged",
                               "data": {"fields": list(LEAD_FIELDS), "kept_for": kept}} for i in out.leads])
    if out.cases:
        linked = session.execute(text(
            "UPDATE case_report SET victim_phone = NULL, victim_id_number = NULL WHERE case_id = ANY(:c) "
            "RETURNING case_id, post_warning_lead_id"), {"c": out.cases}).all()
        record_many(session, [{"lead_id": lead_id, "actor": "retention", "kind": "case_personal_data_purged",
                               "data": {"case_id": case_id, "kept_for": f"{cases_after.days}d"}}
                              for case_id, lead_id in linked if lead_id is not None])
    return out
