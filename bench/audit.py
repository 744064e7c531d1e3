"""The audit chain: how long sealing and `quanzu audit verify` take per million rows.

    python bench/audit.py [--rows 1000000] [--repeat 3]

A fresh database `quanzu_bench_audit_<hex>` (servers found as in the tests: DATABASE_URL, else
127.0.0.1:5432, else an embedded PostgreSQL with fsync on; dropped at the end) gets `--rows`
lead_event rows shaped like the worker's (`placed` events with their placement JSON) for 1,000
leads, written by one INSERT … SELECT from generate_series. Then, each timed on its own:

- baseline: one full scan that reads every column a seal covers (`SELECT … ORDER BY id`,
  streamed to Python as verify streams it) — the floor under any verifier that reads the rows;
- seal: `dispatch.audit.seal` of all rows (the sealer's work, as the worker's job does it);
- verify: `dispatch.audit.verify` of both chains, in one REPEATABLE READ snapshot, as
  `quanzu audit verify` runs it.

Figures are seconds per million rows and verify / baseline. Speed is measured, never asserted.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dispatch import audit  # noqa: E402
from service.core.db import make_sync_engine  # noqa: E402
from service.core.migrate import upgrade  # noqa: E402
from service.core.runtime import with_database  # noqa: E402
from service.core.settings import plain_url  # noqa: E402
from tests.servers import find_servers  # noqa: E402

KEY = audit.audit_key("bench-audit-key-of-some-length")
FILL = """
INSERT INTO lead (source, source_id, pushed_at, warning_type, fraud_type, risk_level, ongoing, phone, residency,
                  counterpart, flags, attempts, status)
SELECT 'national_platform', 'B' || g, now(), 'fraud_call', 'fake_loan', 2, false, '139' || lpad(g::text, 8, '0'),
       'unknown', '{}', '[]', 0, 'tiered'
FROM generate_series(1, 1000) g;

INSERT INTO lead_event (lead_id, at, actor, kind, data)
SELECT 1 + g % 1000, now() - (g || ' ms')::interval, 'worker', 'placed',
       jsonb_build_object('lon', 120.3 + g * 1e-9, 'lat', 36.0, 'beat_code', 'B' || (g % 40), 'street_code',
                          'S' || (g % 8), 'in_jurisdiction', true, 'placed_by', 'location')
FROM generate_series(1, {rows}) g
"""


def _baseline(engine) -> float:
    columns = ", ".join(audit.TABLES["lead_event"])
    t = time.perf_counter()
    with engine.connect() as conn:
        n = sum(1 for _ in audit._stream(conn, f"SELECT {columns}, seal_seq, seal FROM lead_event ORDER BY id"))
    assert n > 0
    return time.perf_counter() - t


def _seal(engine) -> tuple[float, int]:
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE lead_event SET seal_seq = NULL, seal = NULL")
        conn.exec_driver_sql("DELETE FROM audit_head")
    t = time.perf_counter()
    with engine.connect() as conn:
        done = audit.seal(conn, KEY, limit=10**9)
        conn.commit()
    return time.perf_counter() - t, done["lead_event"]


def _verify(engine) -> float:
    t = time.perf_counter()
    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
        reports = audit.verify(conn, KEY, timedelta(days=1))
    elapsed = time.perf_counter() - t
    assert all(r.broken is None for r in reports), [str(r.broken) for r in reports]
    return elapsed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    found = find_servers(fast=False)
    admin = plain_url(found.database_url)
    name = f"quanzu_bench_audit_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    engine = None
    try:
        upgrade(url)
        t = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in FILL.replace("{rows}", str(int(args.rows))).split(";\n\n"):
                conn.execute(statement)
            conn.execute("VACUUM ANALYZE lead_event")
        print(f"PostgreSQL: {found.database_from}; {args.rows:,} lead_event rows written in "
              f"{time.perf_counter() - t:.1f} s")
        engine = make_sync_engine(url, pool_size=1)
        per_m = 1_000_000 / args.rows
        seals, verifies, baselines = [], [], []
        for i in range(args.repeat):
            s, n = _seal(engine)
            assert n == args.rows
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE lead_event")
            b = _baseline(engine)
            v = _verify(engine)
            seals.append(s * per_m)
            baselines.append(b * per_m)
            verifies.append(v * per_m)
            print(f"round {i + 1}: seal {s * per_m:.2f} s/M rows, baseline scan {b * per_m:.2f} s/M, "
                  f"verify {v * per_m:.2f} s/M")
        sm, bm, vm = (statistics.median(x) for x in (seals, baselines, verifies))
        print(f"\nmedian of {args.repeat}: seal {sm:.2f} s per million rows "
              f"({1_000_000 / sm:,.0f} rows/s); verify {vm:.2f} s per million rows "
              f"({1_000_000 / vm:,.0f} rows/s); baseline scan {bm:.2f} s/M; verify / baseline {vm / bm:.2f}")
    finally:
        if engine is not None:
            engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        found.stop()


if __name__ == "__main__":
    main()
