"""The person a lead is about, as every capability may read it: the identifiers a lead links by, and
what a screen shows of a person — "warned N times in 30 days, M visits". The records themselves
(linking, merging, splitting) are `dispatch.outcomes.linking`'s."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import Select, func, literal, select, tuple_, union_all

from dispatch.enums import Flag, VisitStatus
from dispatch.identity import id_number_valid
from dispatch.models import Lead, Visit

PHONE, ID_NUMBER = "phone", "id_number"
KINDS = (PHONE, ID_NUMBER)
WARNED_DAYS = 30  # "warned N times in 30 days": the policy's warned_30d, the lead's and the queue's count
VISITED = (VisitStatus.arrived.value, VisitStatus.done.value)  # a squad reached the person


def identifiers(phone: str | None, id_number: str | None, flags: Iterable[str] = ()) -> list[tuple[str, str]]:
    """The (kind, value) pairs a lead links by: its phone (stored normalised), and its ID number
    upper-cased when it passes its check (a typo or a placeholder must never join two people)."""
    keys = [(PHONE, phone)] if phone else []
    if id_number and Flag.id_number_invalid not in flags:
        idn = id_number.strip().upper()
        if id_number_valid(idn):
            keys.append((ID_NUMBER, idn))
    return keys


def earlier_warnings_query(person_id: int, lead_id: int, pushed_at: datetime) -> Select:
    """(in the 7 days before, in the 30 days before): the person's warnings pushed before this one
    (by pushed_at, then id). A warning is a lead that is its own piece of work: a lead that joined
    another's (`merged_into`) is the same warning again, not a repeat."""
    return select(func.count().filter(Lead.pushed_at > pushed_at - timedelta(days=7)), func.count()).where(
        Lead.person_id == person_id, Lead.merged_into.is_(None), tuple_(Lead.pushed_at, Lead.id) < (pushed_at, lead_id),
        Lead.pushed_at > pushed_at - timedelta(days=WARNED_DAYS))


def summary_query(person_ids: Iterable[int], now: datetime) -> Select:
    """Rows (person_id, what, n) for `fold_summaries`: each person's warnings pushed in the 30 days
    up to `now` (leads not merged into another), and the visits a squad made to them (arrived or
    done), on any lead, ever."""
    ids = sorted(set(person_ids))
    warned = (select(Lead.person_id, literal("warned_30d").label("what"), func.count().label("n"))
              .where(Lead.person_id.in_(ids), Lead.merged_into.is_(None),
                     Lead.pushed_at > now - timedelta(days=WARNED_DAYS), Lead.pushed_at <= now)
              .group_by(Lead.person_id))
    visits = (select(Lead.person_id, literal("visits").label("what"), func.count().label("n"))
              .join(Visit, Visit.lead_id == Lead.id)
              .where(Lead.person_id.in_(ids), Visit.status.in_(VISITED)).group_by(Lead.person_id))
    return union_all(warned, visits)


def fold_summaries(person_ids: Iterable[int], rows) -> dict[int, dict[str, int]]:
    """{person_id: {"warned_30d": N, "visits": M}} for every id asked, zeros included."""
    out = {p: {"warned_30d": 0, "visits": 0} for p in person_ids}
    for person_id, what, n in rows:
        out[person_id][what] = n
    return out
