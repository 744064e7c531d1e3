"""The rows the KPIs are computed from, proved by the chain. Calls, callbacks, visits, leads'
outcomes and post-warning matches are working rows (they change as the work goes on), so they are
not sealed themselves; every change to one is also a timeline event, and the events are sealed
(dispatch/audit.py). `verify_rows` checks, set by set, that each row says what its sealed event
says: a row changed, added or deleted with SQL no longer agrees with any event, and is named.

What is checked (the KPIs' facts):
- call_attempt: each row has its `call` event (same call_id and result); its outcome is the last
  `call_outcome` event's, else the `call` event's; no `call` event names a missing row.
- callback: each done row has its `callback` event (same result); no event names a row not done.
- visit: each done visit has a `visit_completed` event of one of its assignments, with the same
  outcome and met_in_person; no such event names a visit not done.
- lead: a lead's outcome is the outcome of its last `closed` event, unless a `reopened` came after
  (then it has none).
- case_report: its post-warning lead is the lead of the case's last `post_warning_case` event."""
from __future__ import annotations

from sqlalchemy import Connection, text

from dispatch.audit import Broken, ChainReport

CHECKS: dict[str, tuple[str, str]] = {  # table → (rows it covers, the first row that disagrees)
    "call_attempt": ("SELECT count(*) FROM call_attempt", """
        SELECT c.id FROM call_attempt c
        LEFT JOIN LATERAL (SELECT e.data FROM lead_event e WHERE e.lead_id = c.lead_id AND e.kind = 'call'
                           AND e.data->>'call_id' = c.id::text ORDER BY e.id LIMIT 1) ev ON true
        LEFT JOIN LATERAL (SELECT e.data->>'outcome' AS outcome FROM lead_event e WHERE e.lead_id = c.lead_id
                           AND e.kind = 'call_outcome' AND e.data->>'call_id' = c.id::text
                           ORDER BY e.id DESC LIMIT 1) later ON true
        WHERE ev.data IS NULL OR ev.data->>'result' IS DISTINCT FROM c.result
           OR coalesce(later.outcome, ev.data->>'outcome') IS DISTINCT FROM c.outcome
        UNION ALL
        SELECT (e.data->>'call_id')::bigint FROM lead_event e WHERE e.kind = 'call' AND NOT EXISTS (
            SELECT 1 FROM call_attempt c WHERE c.id::text = e.data->>'call_id' AND c.lead_id = e.lead_id)
        ORDER BY 1 LIMIT 1"""),
    "callback": ("SELECT count(*) FROM callback WHERE done_at IS NOT NULL", """
        SELECT b.id FROM callback b WHERE b.done_at IS NOT NULL AND NOT EXISTS (
            SELECT 1 FROM lead_event e WHERE e.lead_id = b.lead_id AND e.kind = 'callback'
            AND e.data->>'callback_id' = b.id::text AND e.data->>'result' IS NOT DISTINCT FROM b.result)
        UNION ALL
        SELECT (e.data->>'callback_id')::bigint FROM lead_event e WHERE e.kind = 'callback' AND NOT EXISTS (
            SELECT 1 FROM callback b WHERE b.id::text = e.data->>'callback_id' AND b.done_at IS NOT NULL)
        ORDER BY 1 LIMIT 1"""),
    "visit": ("SELECT count(*) FROM visit WHERE status = 'done'", """
        SELECT v.id FROM visit v WHERE v.status = 'done' AND NOT EXISTS (
            SELECT 1 FROM lead_event e JOIN assignment a ON a.id::text = e.data->>'assignment_id'
            WHERE e.lead_id = v.lead_id AND e.kind = 'visit_completed' AND a.visit_id = v.id
              AND e.data->>'outcome' IS NOT DISTINCT FROM v.outcome
              AND (e.data->>'met_in_person')::boolean IS NOT DISTINCT FROM v.met_in_person)
        UNION ALL
        SELECT a.visit_id FROM lead_event e JOIN assignment a ON a.id::text = e.data->>'assignment_id'
        JOIN visit v ON v.id = a.visit_id WHERE e.kind = 'visit_completed' AND v.status <> 'done'
        ORDER BY 1 LIMIT 1"""),
    "lead": ("SELECT count(*) FROM lead WHERE outcome IS NOT NULL", """
        SELECT l.id FROM lead l
        LEFT JOIN LATERAL (SELECT e.kind, e.data->>'outcome' AS outcome FROM lead_event e WHERE e.lead_id = l.id
                           AND e.kind IN ('closed', 'reopened') ORDER BY e.id DESC LIMIT 1) last ON true
        WHERE (CASE WHEN last.kind = 'closed' THEN last.outcome END) IS DISTINCT FROM l.outcome
        ORDER BY 1 LIMIT 1"""),
    "case_report": ("SELECT count(*) FROM case_report", """
        WITH last AS (SELECT DISTINCT ON (data->>'case_id') data->>'case_id' AS case_id, lead_id
                      FROM lead_event WHERE kind = 'post_warning_case' ORDER BY data->>'case_id', id DESC)
        SELECT c.id FROM case_report c LEFT JOIN last ON last.case_id = c.case_id
        WHERE last.lead_id IS DISTINCT FROM c.post_warning_lead_id
        ORDER BY 1 LIMIT 1"""),
}


def verify_rows(conn: Connection) -> list[ChainReport]:
    """One report per table (`<table> rows`): how many rows it covers, the first that disagrees."""
    out = []
    for table, (count_sql, first_sql) in CHECKS.items():
        covered = conn.execute(text(count_sql)).scalar_one()
        row_id = conn.execute(text(first_sql)).scalar()
        broken = None if row_id is None else Broken(
            table, row_id, None, "differs from the sealed timeline event that recorded it (changed, added or "
                                 "deleted outside quanzu)")
        out.append(ChainReport(f"{table} rows", covered, 0, broken))
    return out
