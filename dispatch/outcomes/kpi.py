"""The KPIs a center is judged by (domain.md "KPIs"), as pure functions of counts.

`dispatch.outcomes.stats` counts the raw rows in SQL; this module turns counts into rates, scores and
rankings. The API (/stats, /stats/ranking), the monthly report and the screen all use it, so a
number means the same everywhere. A rate whose denominator is empty is None (null), never 0 or 1.
The meaning of every count is documented in README.md ("KPIs"); the ones about people and work:

- `leads`: pieces of work — leads received in the range that did not join another lead's work
  (一次预警一件事); `merged`: the group's leads that did (`merged_into` set), in no other count.
- `people`: distinct persons among those leads (一人一档 `person_id`; a lead not linked to anyone
  counts by its phone, else its ID number, else alone).
- 回访率 `callback_rate` = `callbacks_done` / `callbacks_due`. A callback is the 回访 of one closed
  lead (one per close): due once its first attempt is due (or made), done once an attempt answered
  `safe` or `defrauded`. An attempt answered `not_reached` is retried on the policy's `[callback]`
  schedule and is not done; after `max_attempts` the callback stays due and not done.
- 预警后发案, per case: `post_warning_cases` = cases matched to a warning of the group (the victim —
  phone, ID number or their person — was warned in the 30 days before the case; a case matched to a
  lead that joined another's work counts for that work). Per person: `post_warning_people` =
  distinct persons of the group with at least one such case.
- 预警后发案率 `post_warning_rate` = `post_warning_people` / `people`: the share of the warned people
  who were defrauded after a warning (a person with two cases counts once)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

# rate name → (numerator count, denominator count)
RATES: dict[str, tuple[str, str]] = {
    "sign_in_time_rate": ("signed_in_time", "leads"),  # 签收及时率
    "connection_rate": ("connected", "calls"),  # 电话拨通率
    "face_to_face_rate": ("visits_done", "visits_required"),  # 见面劝阻率
    "fund_face_to_face_rate": ("fund_visits_done", "fund_visits_required"),  # 资金预警见面率
    "dissuasion_rate": ("dissuaded", "closed_counted"),  # 劝阻成功率
    "callback_rate": ("callbacks_done", "callbacks_due"),  # 回访率
    "post_warning_rate": ("post_warning_people", "people"),  # 预警后发案率: per person, not per case
    "attempts_per_lead": ("attempts", "leads"),
    "attempts_per_person": ("attempts", "people"),
}
# The rates a street is scored on; post_warning_rate counts inverted (fewer cases is better).
SCORED = ("sign_in_time_rate", "connection_rate", "face_to_face_rate", "dissuasion_rate", "callback_rate",
          "post_warning_rate")
SUPERVISED = 3  # 挂牌督办: the three worst streets of a quarter


def rate(numerator: int | float | None, denominator: int | float | None) -> float | None:
    if not denominator:
        return None
    return (numerator or 0) / denominator


def with_rates(counts: Mapping) -> dict:
    """The counts of one group plus every rate of RATES."""
    row = dict(counts)
    for name, (num, den) in RATES.items():
        row[name] = rate(row.get(num), row.get(den))
    return row


def score(row: Mapping) -> float | None:
    """Mean of the street's scored rates (0..1, higher is better); rates that are null are left
    out; None when none applies."""
    parts = []
    for name in SCORED:
        v = row.get(name)
        if v is not None:
            parts.append(1.0 - v if name == "post_warning_rate" else v)
    return sum(parts) / len(parts) if parts else None


def worst_first(rows: Iterable[Mapping]) -> list[dict]:
    """逆排名: lowest score first; streets with nothing to judge (score None) last; ties by key."""
    scored = [{**r, "score": score(r)} for r in rows]
    scored.sort(key=lambda r: (r["score"] is None, r["score"] if r["score"] is not None else 0.0, r["key"] or ""))
    for i, r in enumerate(scored, 1):
        r["rank"] = i
    return scored


def rank_month(month_rows: Iterable[Mapping], quarter_rows: Iterable[Mapping]) -> list[dict]:
    """The month's ranking, each street marked for supervision when it is among the SUPERVISED
    worst of the quarter so far (streets with a score only)."""
    quarter = {r["key"]: r for r in worst_first(quarter_rows)}
    supervised = {k for k, r in quarter.items() if r["score"] is not None and r["rank"] <= SUPERVISED}
    out = []
    for r in worst_first(month_rows):
        q = quarter.get(r["key"])
        out.append({**r, "quarter_score": q["score"] if q else None, "quarter_rank": q["rank"] if q else None,
                    "supervision": r["key"] in supervised})
    return out


def month_bounds(month: str) -> tuple[date, date]:
    """'2026-10' → (2026-10-01, 2026-11-01)."""
    y, m = int(month[:4]), int(month[5:7])
    return date(y, m, 1), date(y + (m == 12), m % 12 + 1, 1)


def quarter_start(month: str) -> tuple[date, str]:
    y, m = int(month[:4]), int(month[5:7])
    q = (m - 1) // 3
    return date(y, 3 * q + 1, 1), f"{y}-Q{q + 1}"
