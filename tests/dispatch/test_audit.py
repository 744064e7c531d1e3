"""The audit chain: rows edited, deleted or inserted with plain SQL are found; a clean chain is clean."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import text

from dispatch import audit
from service.core.settings import audit_secret
from tests.factories import make_lead

pytestmark = pytest.mark.usefixtures("clean", "district")
WINDOW = timedelta(seconds=300)


@pytest.fixture
def key(settings) -> bytes:
    return audit.audit_key(audit_secret(settings))


@pytest.fixture
async def trail(client, source_headers, commander, run_worker, sync_engine, key) -> dict:
    """Leads pushed and processed (events) and read in full (access_log), then sealed."""
    ids = []
    for _ in range(6):
        r = await client.post("/api/v1/leads", json=make_lead(), headers=source_headers)
        assert r.status_code == 202
        ids.append(r.json()["id"])
    await run_worker()
    for lead_id in ids[:3]:
        assert (await client.get(f"/api/v1/leads/{lead_id}", headers=commander)).status_code == 200
    with sync_engine.connect() as conn:
        sealed = audit.seal(conn, key)
        conn.commit()
        counts = {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in audit.TABLES}
    assert sealed == counts and counts["lead_event"] >= 12 and counts["access_log"] == 3
    return counts


def _verify(sync_engine, key) -> dict[str, audit.ChainReport]:
    with sync_engine.connect() as conn:
        return {r.table: r for r in audit.verify(conn, key, WINDOW)}


def _sql(sync_engine, statement: str, **params) -> None:
    with sync_engine.begin() as conn:
        conn.execute(text(statement), params)


def _ids(sync_engine, table: str) -> list[int]:
    with sync_engine.connect() as conn:
        return list(conn.execute(text(f"SELECT id FROM {table} ORDER BY seal_seq")).scalars())


def test_a_clean_chain_verifies(trail, sync_engine, key):
    reports = _verify(sync_engine, key)
    assert {t: (r.sealed, r.unsealed, r.broken) for t, r in reports.items()} == {
        t: (n, 0, None) for t, n in trail.items()}


def test_an_edited_event_is_the_first_broken_link(trail, sync_engine, key):
    ids = _ids(sync_engine, "lead_event")
    _sql(sync_engine, "UPDATE lead_event SET data = data || '{\"tier\": \"sms\"}' WHERE id = :i", i=ids[4])
    _sql(sync_engine, "UPDATE lead_event SET actor = 'someone' WHERE id = :i", i=ids[7])
    broken = _verify(sync_engine, key)["lead_event"].broken
    assert (broken.row_id, broken.position) == (ids[4], 5) and "do not match its seal" in broken.problem
    assert _verify(sync_engine, key)["access_log"].broken is None


def test_a_deleted_event_is_found(trail, sync_engine, key):
    ids = _ids(sync_engine, "lead_event")
    _sql(sync_engine, "DELETE FROM lead_event WHERE id = :i", i=ids[2])
    broken = _verify(sync_engine, key)["lead_event"].broken
    assert (broken.row_id, broken.position) == (ids[3], 4) and "3…3 are missing" in broken.problem


def test_deleting_the_last_events_is_found(trail, sync_engine, key):
    ids = _ids(sync_engine, "lead_event")
    _sql(sync_engine, "DELETE FROM lead_event WHERE id = ANY(:i)", i=ids[-2:])
    broken = _verify(sync_engine, key)["lead_event"].broken
    assert broken.row_id is None and "the last rows were deleted" in broken.problem


def test_an_inserted_event_is_found(trail, sync_engine, key):
    ids = _ids(sync_engine, "lead_event")
    # An event back-dated into the sealed past, never sealed.
    _sql(sync_engine, "INSERT INTO lead_event (lead_id, at, actor, kind, data) SELECT lead_id, at - interval '1 hour', actor, "
                      "'closed', '{}' FROM lead_event WHERE id = :i", i=ids[1])
    broken = _verify(sync_engine, key)["lead_event"].broken
    assert broken.row_id == max(ids) + 1 and "not in the chain" in broken.problem
    # Or given a chain position and a made-up seal, to pass for a sealed row.
    _sql(sync_engine, "UPDATE lead_event SET seal_seq = :p, seal = sha256('x') WHERE id = :i",
         p=len(ids) + 1, i=max(ids) + 1)
    broken = _verify(sync_engine, key)["lead_event"].broken
    assert (broken.row_id, broken.position) == (max(ids) + 1, len(ids) + 1)
    assert "do not match its seal" in broken.problem


def test_an_edited_access_log_row_is_found(trail, sync_engine, key):
    ids = _ids(sync_engine, "access_log")
    _sql(sync_engine, "UPDATE access_log SET actor = 'nobody' WHERE id = :i", i=ids[1])
    reports = _verify(sync_engine, key)
    assert reports["lead_event"].broken is None
    assert (reports["access_log"].broken.row_id, reports["access_log"].broken.position) == (ids[1], 2)


def test_a_row_committed_after_a_later_one_was_sealed_joins_the_chain(trail, sync_engine, key, settings):
    """Ids are taken in one order and committed in another: a late row is sealed next, not flagged."""
    with psycopg.connect(settings.database_url) as slow:
        lead_id = slow.execute("SELECT min(lead_id) FROM lead_event").fetchone()[0]
        slow.execute("INSERT INTO lead_event (lead_id, actor, kind) VALUES (%s, 'test', 'note')", (lead_id,))
        _sql(sync_engine, "INSERT INTO lead_event (lead_id, actor, kind) VALUES (:l, 'test', 'note')", l=lead_id)
        with sync_engine.connect() as conn:
            assert audit.seal(conn, key) == {"lead_event": 1, "access_log": 0}
            conn.commit()
        slow.commit()
    with sync_engine.connect() as conn:
        assert audit.seal(conn, key) == {"lead_event": 1, "access_log": 0}
        conn.commit()
    reports = _verify(sync_engine, key)
    assert reports["lead_event"].broken is None and reports["lead_event"].sealed == trail["lead_event"] + 2


def test_only_one_sealer_runs_at_a_time(trail, sync_engine, key):
    with sync_engine.connect() as holder, sync_engine.connect() as other:
        holder.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": audit.ADVISORY_LOCK})
        assert audit.seal(other, key) == {}
        holder.rollback()


def test_a_wrong_key_breaks_the_first_link(trail, sync_engine):
    broken = _verify(sync_engine, audit.audit_key("another secret of 16+ chars"))["lead_event"].broken
    assert broken.position == 1


def test_quanzu_audit_verify_exits_non_zero_and_names_the_link(trail, sync_engine, settings):
    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "service.cli", "audit", "verify"], env={**os.environ},
                              capture_output=True, text=True, timeout=120)

    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert f"lead_event: intact, {trail['lead_event']} rows sealed" in ok.stderr
    ids = _ids(sync_engine, "lead_event")
    _sql(sync_engine, "UPDATE lead_event SET kind = 'closed' WHERE id = :i", i=ids[0])
    bad = run()
    assert bad.returncode == 1
    assert f"first broken link: lead_event id {ids[0]} (chain position 1)" in bad.stderr


async def test_the_workers_sealing_job_chains_new_rows(client, source_headers, sync_engine, key):
    from workers.tasks import seal_audit

    r = await client.post("/api/v1/leads", json=make_lead(), headers=source_headers)
    assert r.status_code == 202
    assert seal_audit() == {"lead_event": 1, "access_log": 0}
    assert seal_audit() == {"lead_event": 0, "access_log": 0}
    reports = _verify(sync_engine, key)
    assert (reports["lead_event"].sealed, reports["lead_event"].broken) == (1, None)


def test_deleted_and_inserted_access_log_rows_are_found(trail, sync_engine, key):
    ids = _ids(sync_engine, "access_log")
    _sql(sync_engine, "DELETE FROM access_log WHERE id = :i", i=ids[0])
    broken = _verify(sync_engine, key)["access_log"].broken
    assert (broken.row_id, broken.position) == (ids[1], 2) and "1…1 are missing" in broken.problem
    _sql(sync_engine, "INSERT INTO access_log (id, at, actor, role, lead_id, what) SELECT :i, at - interval '1 day', "
                      "actor, role, lead_id, what FROM access_log WHERE id = :j", i=ids[0], j=ids[1])
    broken = _verify(sync_engine, key)["access_log"].broken  # the gap is still the first broken link
    assert (broken.row_id, broken.position) == (ids[1], 2)
    assert _verify(sync_engine, key)["lead_event"].broken is None
