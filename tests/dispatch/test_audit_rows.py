"""Every figure provable: the rows the KPIs count (calls, callbacks, visits, outcomes, post-warning
matches) agree with the sealed timeline; one changed, added or deleted with SQL is named by
`audit verify`."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from dispatch import audit
from dispatch.audit_rows import verify_rows
from service.core.settings import audit_secret
from tests.conftest import wipe
from tests.factories import INSIDE, make_lead


@pytest.fixture(scope="module")
async def worked(client, source_headers, commander, make_user, run_worker, sync_engine, redis_url, district,
                 settings) -> dict:
    """Leads called, closed, called back, visited and matched to a case through the API, then sealed."""
    wipe(sync_engine, redis_url)
    ids = []
    for _ in range(4):
        r = await client.post("/api/v1/leads", json=make_lead(risk_level=2), headers=source_headers)
        ids.append(r.json()["id"])
    await run_worker()
    operator = make_user("operator")
    for lead_id, result in zip(ids, ("no_answer", "connected", "busy", "connected")):
        r = await client.post(f"/api/v1/leads/{lead_id}/calls", headers=operator,
                              json={"result": result, **({"outcome": "dissuaded"} if result == "connected" else {})})
        assert r.status_code < 300, r.text
    for lead_id in ids[:2]:
        r = await client.post(f"/api/v1/leads/{lead_id}/close", headers=commander, json={"outcome": "dissuaded"})
        assert r.status_code < 300, r.text
    r = await client.post(f"/api/v1/leads/{ids[0]}/callbacks", headers=operator, json={"result": "safe"})
    assert r.status_code < 300, r.text
    police = make_user("police", team=INSIDE["team"])
    r = await client.post(f"/api/v1/leads/{ids[2]}/assign", json={"team_code": INSIDE["team"]}, headers=commander)
    assert r.status_code < 300, r.text
    aid = r.json()["id"]
    for step, body in (("accept", {}), ("arrive", {}), ("complete", {"outcome": "dissuaded", "met_in_person": True})):
        r = await client.post(f"/api/v1/assignments/{aid}/{step}", headers=police, json=body)
        assert r.status_code < 300, (step, r.text)
    with sync_engine.connect() as conn:
        phone = conn.execute(text("SELECT phone FROM lead WHERE id = :i"), {"i": ids[3]}).scalar()
    r = await client.post("/api/v1/cases", headers=source_headers, json={
        "case_id": "K-1", "reported_at": "2026-11-03T10:00:00+08:00", "victim": {"phone": phone}, "loss_cny": 10})
    assert r.json()["post_warning_of"]["id"] == ids[3], r.text
    key = audit.audit_key(audit_secret(settings))
    with sync_engine.connect() as conn:
        audit.seal(conn, key)
        conn.commit()
    return {"ids": ids, "key": key}


def _reports(conn) -> dict:
    return {r.table: r for r in verify_rows(conn)}


def test_the_worked_rows_agree_with_the_chain(worked, sync_engine):
    with sync_engine.connect() as conn:
        reports = _reports(conn)
    assert {t: r.broken for t, r in reports.items()} == {t: None for t in reports}
    assert {t: r.sealed for t, r in reports.items()} == {
        "call_attempt rows": 4, "callback rows": 1, "visit rows": 1, "lead rows": 3, "case_report rows": 1}


TAMPER = {
    "a failed call made connected": ("call_attempt", "UPDATE call_attempt SET result = 'connected' "
                                                     "WHERE result = 'no_answer' RETURNING id"),
    "a call's outcome changed": ("call_attempt", "UPDATE call_attempt SET outcome = 'refused' "
                                                 "WHERE outcome IS NOT NULL RETURNING id"),
    "a call deleted": ("call_attempt", "DELETE FROM call_attempt WHERE result = 'busy' RETURNING id"),
    "a call added": ("call_attempt", "INSERT INTO call_attempt (lead_id, at, actor, result) SELECT id, now(), 'x', "
                                     "'connected' FROM lead ORDER BY id LIMIT 1 RETURNING id"),
    "a callback made safe": ("callback", "UPDATE callback SET done_at = now(), result = 'safe', actor = 'x' "
                                         "WHERE done_at IS NULL RETURNING id"),
    "a visit's outcome changed": ("visit", "UPDATE visit SET outcome = 'refused' WHERE status = 'done' RETURNING id"),
    "an outcome changed": ("lead", "UPDATE lead SET outcome = 'false_alarm' WHERE outcome IS NOT NULL "
                                   "AND id = (SELECT min(id) FROM lead WHERE outcome IS NOT NULL) RETURNING id"),
    "an open lead closed": ("lead", "UPDATE lead SET status = 'closed', outcome = 'dissuaded' WHERE outcome IS NULL "
                                    "AND id = (SELECT max(id) FROM lead WHERE outcome IS NULL) RETURNING id"),
    "a case unmatched": ("case_report", "UPDATE case_report SET post_warning_lead_id = NULL RETURNING id"),
}


@pytest.mark.parametrize("what", TAMPER)
def test_a_row_changed_with_sql_is_named(worked, sync_engine, what):
    table, sql = TAMPER[what]
    with sync_engine.connect() as conn:  # changed, checked, rolled back: the next case starts clean
        changed = conn.execute(text(sql)).scalars().first()
        assert changed is not None
        reports = _reports(conn)
        conn.rollback()
    broken = {t: r.broken for t, r in reports.items() if r.broken}
    assert list(broken) == [f"{table} rows"] and broken[f"{table} rows"].row_id == changed, broken


def test_audit_verify_runs_both(worked, database_url, settings):
    reports = audit.run_verify(database_url, settings)
    assert {r.table for r in reports} >= {"lead_event", "access_log", "call_attempt rows", "case_report rows"}
    assert not any(r.broken for r in reports)
    assert timedelta(seconds=settings.audit_unsealed_window_seconds)
