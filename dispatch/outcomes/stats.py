"""KPI counts from the raw rows, in one SQL statement per question (formulas: dispatch.outcomes.kpi).

Each child table is aggregated per lead first (one pass each), joined to the leads in range, and
grouped by the chosen key with GROUPING SETS, so the groups and the total come from one scan. The
work is counted once (一次预警一件事): a lead that joined another's work (`merged_into`) is no lead
of its own in any count; `merged` says how many of the group's leads did so."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum

from sqlalchemy import text

from dispatch.outcomes import kpi
from dispatch.outcomes.cases import CASE_REJECTION_SOURCE
from service.core.clock import CENTER_TZ


class GroupBy(StrEnum):
    street = "street"
    beat = "beat"
    team = "team"
    tier = "tier"
    fraud_type = "fraud_type"
    source = "source"
    day = "day"
    district = "district"  # the city center ranks its districts as a district ranks its streets


# The key of a lead for each grouping (the team: the lead's assigned squad, else the squad of its
# last accepted offer).
KEY_SQL: dict[GroupBy, str] = {
    GroupBy.street: "l.street_code",
    GroupBy.beat: "l.beat_code",
    GroupBy.team: "coalesce(l.assigned_team, a.team)",
    GroupBy.tier: "l.tier",
    GroupBy.fraud_type: "l.fraud_type",
    GroupBy.source: "l.source",
    GroupBy.day: "to_char(l.received_at AT TIME ZONE '+08:00'::interval, 'YYYY-MM-DD')",
    GroupBy.district: "l.district_code",
}
# `AT TIME ZONE interval '+08:00'` gives the local wall time for UTC+8 (POSIX sign rules do not apply
# to intervals).

COUNTS = ("leads", "merged", "people", "signed", "signed_in_time", "calls", "connected", "call_attempts", "sms_sent",
          "visits_required", "visits_done", "fund_visits_required", "fund_visits_done", "closed_counted",
          "dissuaded", "callbacks_due", "callbacks_done", "post_warning_cases", "post_warning_people", "attempts")
TIMINGS = ("sign_seconds", "first_call_seconds", "on_scene_seconds")


_TEAM = """,
           (array_agg(team_code ORDER BY id DESC)
                FILTER (WHERE status IN ('accepted', 'arrived', 'completed')))[1] AS team"""


def _sql(key: str) -> str:
    team = _TEAM if "a.team" in key else ""  # only the team grouping needs the squad of the last offer

    def pct(expr: str, name: str) -> str:
        return (f"percentile_cont(0.5) WITHIN GROUP (ORDER BY {expr}) FILTER (WHERE work) AS {name}_median, "
                f"percentile_cont(0.9) WITHIN GROUP (ORDER BY {expr}) FILTER (WHERE work) AS {name}_p90")

    # A callback (回访) is one per closed lead and close: its first attempt; it is due once that attempt
    # is due or made, done once any attempt answered safe or defrauded (not_reached is tried again).
    # A case matched to a lead that joined another's work counts for that work.
    return f"""
WITH c AS (
    SELECT lead_id, count(*) AS n, bool_or(result = 'connected') AS connected, min(at) AS first_at
    FROM call_attempt GROUP BY lead_id
), s AS (
    SELECT lead_id, count(*) AS n FROM sms_message
    WHERE purpose = 'warning' AND status IN ('sent', 'delivered') GROUP BY lead_id
), v AS (
    SELECT lead_id, bool_or(status = 'done' AND met_in_person IS TRUE) AS done
    FROM visit GROUP BY lead_id
), a AS (
    SELECT lead_id, min(arrived_at) AS on_scene, count(arrived_at) AS arrivals{team}
    FROM assignment GROUP BY lead_id
), cb AS (
    SELECT lead_id, count(*) FILTER (WHERE attempt = 1 AND (done_at IS NOT NULL OR due_at <= :now)) AS due,
           count(*) FILTER (WHERE result IN ('safe', 'defrauded')) AS done
    FROM callback GROUP BY lead_id
), k AS (
    SELECT coalesce(l.merged_into, l.id) AS lead_id, count(*) AS n FROM case_report c
    JOIN lead l ON l.id = c.post_warning_lead_id GROUP BY 1
), d AS (
    SELECT lead_id, due_at FROM lead_deadline WHERE name = 'sign'
), per AS (
    SELECT {key} AS key, l.merged_into IS NULL AS work,
           coalesce('p' || l.person_id, l.phone, 'id:' || upper(l.id_number), 'lead:' || l.id) AS person,
           l.warning_type = 'fund_transfer' AS fund, l.received_at, l.signed_at,
           l.signed_at IS NOT NULL AND l.signed_at <= coalesce(
               d.due_at, (l.tier_detail -> 'deadlines' ->> 'sign')::timestamptz) AS signed_in_time,
           l.status = 'closed' AND l.outcome NOT IN ('duplicate', 'false_alarm') AS closed_counted,
           l.status = 'closed' AND l.outcome = 'dissuaded' AS dissuaded,
           c.n AS call_attempts, c.connected, c.first_at, s.n AS sms, v.done AS visit_done, v.lead_id AS visit,
           a.on_scene, cb.due AS cb_due, cb.done AS cb_done, k.n AS cases,
           coalesce(c.n, 0) + coalesce(s.n, 0) + coalesce(a.arrivals, 0) AS attempts,
           coalesce(l.loss_cny, 0) AS loss, coalesce(l.saved_cny, 0) AS saved
    FROM lead l
    LEFT JOIN c ON c.lead_id = l.id LEFT JOIN s ON s.lead_id = l.id LEFT JOIN v ON v.lead_id = l.id
    LEFT JOIN a ON a.lead_id = l.id LEFT JOIN cb ON cb.lead_id = l.id LEFT JOIN k ON k.lead_id = l.id
    LEFT JOIN d ON d.lead_id = l.id
    WHERE l.received_at >= :since AND l.received_at < :until
      AND (CAST(:district AS text) IS NULL OR l.district_code = CAST(:district AS text))
)
SELECT GROUPING(key) = 1 AS is_total, key,
       count(*) FILTER (WHERE work) AS leads, count(*) FILTER (WHERE NOT work) AS merged,
       count(DISTINCT person) FILTER (WHERE work) AS people,
       count(signed_at) FILTER (WHERE work) AS signed, count(*) FILTER (WHERE work AND signed_in_time) AS signed_in_time,
       count(call_attempts) FILTER (WHERE work) AS calls, count(*) FILTER (WHERE work AND connected) AS connected,
       coalesce(sum(call_attempts) FILTER (WHERE work), 0) AS call_attempts,
       coalesce(sum(sms) FILTER (WHERE work), 0) AS sms_sent,
       count(visit) FILTER (WHERE work) AS visits_required, count(*) FILTER (WHERE work AND visit_done) AS visits_done,
       count(visit) FILTER (WHERE work AND fund) AS fund_visits_required,
       count(*) FILTER (WHERE work AND visit_done AND fund) AS fund_visits_done,
       count(*) FILTER (WHERE work AND closed_counted) AS closed_counted,
       count(*) FILTER (WHERE work AND dissuaded) AS dissuaded,
       coalesce(sum(cb_due) FILTER (WHERE work), 0) AS callbacks_due,
       coalesce(sum(cb_done) FILTER (WHERE work), 0) AS callbacks_done,
       coalesce(sum(cases) FILTER (WHERE work), 0) AS post_warning_cases,
       count(DISTINCT person) FILTER (WHERE work AND cases > 0) AS post_warning_people,
       sum(attempts) FILTER (WHERE work) AS attempts,
       {pct("extract(epoch FROM signed_at - received_at)", "sign_seconds")},
       {pct("extract(epoch FROM first_at - received_at)", "first_call_seconds")},
       {pct("extract(epoch FROM on_scene - received_at)", "on_scene_seconds")},
       sum(loss) FILTER (WHERE work) AS loss_cny, sum(saved) FILTER (WHERE work) AS saved_cny
FROM per GROUP BY GROUPING SETS ((key), ())
ORDER BY is_total, key NULLS LAST"""


_QUERIES = {g: text(_sql(KEY_SQL[g])) for g in GroupBy}

_EMPTY = {**{c: 0 for c in COUNTS}, **{f"{t}_{p}": None for t in TIMINGS for p in ("median", "p90")},
          "loss_cny": 0.0, "saved_cny": 0.0}


def _row(r) -> dict:
    d = dict(r._mapping)
    d.pop("is_total")
    for c in COUNTS:
        d[c] = int(d[c] or 0)
    for t in ("loss_cny", "saved_cny"):
        d[t] = float(d[t] or 0)
    return kpi.with_rates(d)


def local_start(d: date) -> datetime:
    return datetime.combine(d, time(), CENTER_TZ)


async def kpi_rows(session, group_by: GroupBy, since: datetime, until: datetime, now: datetime,
                   district: str | None = None) -> tuple[list[dict], dict]:
    """→ (one row per key, the total row), rates included; `district`: that district's leads only
    (dispatch.access.stats_district: a district's people count their own), None for the whole city."""
    result = (await session.execute(_QUERIES[group_by], {"since": since, "until": until, "now": now,
                                                         "district": district})).all()
    rows, total = [], kpi.with_rates({"key": None, **_EMPTY})
    for r in result:
        if r.is_total:
            total = {**_row(r), "key": None}
        else:
            rows.append(_row(r))
    return rows, total


_REJECTIONS = text("""
SELECT coalesce(source, '(none)') AS source, e.value ->> 'field' AS field, r.id
FROM rejection r LEFT JOIN LATERAL jsonb_array_elements(r.errors) e ON true
WHERE r.at >= :since AND r.at < :until""")


async def rejection_counts(session, since: datetime, until: datetime) -> dict:
    """Rejected pushes (leads and cases: source 'case') by source, and their errors by field."""
    rows = (await session.execute(_REJECTIONS, {"since": since, "until": until})).all()
    by_source: dict[str, set] = {}
    by_reason: dict[str, int] = {}
    for source, field, rid in rows:
        by_source.setdefault(source, set()).add(rid)
        if field is not None:
            by_reason[field or "(body)"] = by_reason.get(field or "(body)", 0) + 1
    return {"total": len({rid for *_x, rid in rows}), "by_source": {k: len(v) for k, v in by_source.items()},
            "by_reason": by_reason}


def default_range(since: datetime | None, until: datetime | None, now: datetime) -> tuple[datetime, datetime]:
    """Without bounds: the last 30 days up to now."""
    until = until or now + timedelta(seconds=1)
    return since or until - timedelta(days=30), until


__all__ = ["GroupBy", "kpi_rows", "rejection_counts", "CASE_REJECTION_SOURCE"]


_NAMES = {GroupBy.street: text("SELECT code, name FROM street WHERE CAST(:district AS text) IS NULL "
                               "OR district_code = CAST(:district AS text)"),
          GroupBy.district: text("SELECT code, name FROM district WHERE CAST(:district AS text) IS NULL "
                                 "OR code = CAST(:district AS text)")}


async def ranking(session, month: str, now: datetime, district: str | None = None,
                  by: GroupBy = GroupBy.street) -> dict:
    """逆排名 of the streets (or, for the city center, the districts: `by`) for `month` (YYYY-MM,
    center time), with the quarter so far for 挂牌督办. Every street of the district (`district`:
    one district's; None: the city's) is listed, with or without leads."""
    start, end = kpi.month_bounds(month)
    q_start, quarter = kpi.quarter_start(month)
    month_rows, _ = await kpi_rows(session, by, local_start(start), local_start(end), now, district)
    quarter_rows, _ = await kpi_rows(session, by, local_start(q_start), local_start(end), now, district)
    names = dict((await session.execute(_NAMES[by], {"district": district})).all())
    empty = kpi.with_rates(_EMPTY)

    def complete(rows: list[dict]) -> list[dict]:
        have = {r["key"] for r in rows}
        rows = [r for r in rows if r["key"] is not None]  # leads placed nowhere belong to no street
        rows += [{**empty, "key": code} for code in names if code not in have]
        return [{**r, "name": names.get(r["key"])} for r in rows]

    return {"month": month, "quarter": quarter,
            "rows": kpi.rank_month(complete(month_rows), complete(quarter_rows))}
