"""The response ladder's worker throughput, each against rq's floor in the same run.

    python bench/ladder.py [--leads 5000] [--pending 100000] [--due 20000] [--noop 5000] [--profile]

1. **tier and schedule**: leads stored `received` (the shared feed's accepted leads, cycled with
   fresh source ids), their jobs enqueued as the API does (`enqueue_leads`, 500 leads a job), and
   a real rq `SimpleWorker` drains the queue in burst mode: placing, tiering, deadline rows, the
   first SMS queued. → leads/s. The SMS those jobs queue are then sent on their own (logging
   gateway, 500 a job) and timed apart. → SMS/s.
2. **the deadline sweep at 100,000 pending**: `--pending` pending `lead_deadline` rows of which
   `--due` are due (all five names of the first P1 leads: each `connected_call` miss escalates to a
   visit), swept by the
   `workers.tasks.sweep_deadlines` job in the same SimpleWorker. → due deadlines acted on per s.
3. **the floor**: the same SimpleWorker running `--noop` no-op jobs (`os.getpid`). → jobs/s.

Ratios are leads/s ÷ no-op jobs/s and deadlines/s ÷ no-op jobs/s (goal ≥ 0.5: each lead and each
due deadline costs the workers at most twice what rq spends on an empty job). Measured, never
asserted. Servers as the tests find them; a fresh database `quanzu_bench_ladder_<hex>` (dropped at
the end) and Redis db 3 (flushed).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import secrets
import signal
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import psycopg
from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.core.runtime import with_database, with_redis_db  # noqa: E402
from service.core.settings import find_sample_district, plain_url  # noqa: E402
from tests.servers import find_servers  # noqa: E402

# Flushed: never the db a test run of this checkout uses at the same time (QUANZU_TEST_REDIS_DB).
REDIS_DB = int(os.environ.get("QUANZU_BENCH_REDIS_DB", "3"))
DISTRICT = find_sample_district() or ROOT.parent / "shared" / "data" / "district"


def feed(n: int) -> list:
    from dispatch.intake.repository import lead_row
    from dispatch.intake.validation import validate_lead

    base = []
    with (DISTRICT / "leads.jsonl").open(encoding="utf-8") as f:
        for line in f:
            checked = validate_lead(json.loads(line))
            if checked.lead is not None:
                base.append(checked)
    rows = []
    for i in range(n):
        c = base[i % len(base)]
        lead = c.lead.model_copy(update={"source_id": f"BENCH-{i}-{uuid.uuid4().hex[:6]}"})
        rows.append(lead_row(lead, c.flags))
    return rows


async def store(url: str, rows: list) -> list[int]:
    from dispatch.intake.repository import insert_leads

    conn = await asyncpg.connect(plain_url(url))
    try:
        ids = []
        for i in range(0, len(rows), 1000):
            chunk = rows[i:i + 1000]
            ids += [lead_id for lead_id, _ in await insert_leads(conn, chunk, ["source:bench"] * len(chunk))]
        return ids
    finally:
        await conn.close()


def drain(redis: Redis, queue, profile: bool = False) -> float:
    from rq import SimpleWorker

    worker = SimpleWorker([queue], connection=redis)
    prof = cProfile.Profile() if profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
    return time.perf_counter() - t


def noop_rate(redis: Redis, queue, n: int) -> float:
    from rq import Queue

    queue.enqueue_many([Queue.prepare_data("os.getpid", result_ttl=0) for _ in range(n)])
    return n / drain(redis, queue)


def make_pending(url: str, pending: int, due: int) -> None:
    """`pending` deadline rows on P1 leads (5 names per lead), `due` of them already due: every
    name of the first leads, so one due row in five is a `connected_call` that escalates to a visit."""
    names = ["connected_call", "sign", "first_call", "visit", "callback"]
    leads = -(-pending // len(names))
    with psycopg.connect(plain_url(url), autocommit=True) as conn:
        conn.execute("""INSERT INTO lead (source, source_id, pushed_at, warning_type, fraud_type, risk_level, residency,
                        status, tier, tier_detail, placed_by, in_jurisdiction, needs_call, ongoing)
                        SELECT 'national_platform', 'SWEEP-' || g, now(), 'fraud_call', 'fake_loan', 1, 'nonlocal',
                               'tiered', 'P1', '{"tier": "P1", "response": ["call"]}', 'location', true, true, false
                        FROM generate_series(1, %s) g""", (leads,))
        conn.execute("""INSERT INTO lead_deadline (lead_id, name, due_at, state)
                        SELECT l.id, n.name,
                               CASE WHEN row_number() OVER (ORDER BY l.id, n.ord) <= %s
                                    THEN now() - interval '1 minute' ELSE now() + interval '30 days' END, 'pending'
                        FROM lead l, unnest(%s::text[]) WITH ORDINALITY AS n(name, ord)
                        WHERE l.source_id LIKE 'SWEEP-%%'
                        ORDER BY n.ord, l.id LIMIT %s""", (due, names, pending))
        conn.execute("ANALYZE lead_deadline")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=5000)
    ap.add_argument("--pending", type=int, default=100_000)
    ap.add_argument("--due", type=int, default=20_000)
    ap.add_argument("--noop", type=int, default=5000)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the tiering drain")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: drop the database
    servers = find_servers(fast=False)
    admin = plain_url(servers.database_url)
    name = f"quanzu_bench_ladder_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = url, with_redis_db(servers.redis_url, REDIS_DB)
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))  # serve and worker refuse the development key
    try:
        from dispatch.district import import_district
        from geo.district import load_district_dir
        from service.core.db import make_sync_engine, sync_session
        from service.core.logging import configure_logging
        from service.core.migrate import upgrade
        from service.core.settings import get_settings
        from workers.queues import enqueue_leads, lead_queue
        from workers.tasks import ctx

        configure_logging("WARNING", True)
        upgrade(url)
        with sync_session(make_sync_engine(url, 1)) as session:
            import_district(session, load_district_dir(DISTRICT))
            session.commit()
        redis = Redis.from_url(os.environ["REDIS_URL"])
        redis.flushdb()
        queue = lead_queue(redis, get_settings().queue_name)
        ctx.index  # noqa: B018 - warm: load the beat index before the clock starts
        rows = feed(args.leads)

        results = {}
        noop = [noop_rate(redis, queue, args.noop)]
        ids = asyncio.run(store(url, rows))
        # The SMS jobs tiering queues are held back and timed on their own (sending is not tiering):
        # the outbox's sender (workers.queues.send) enqueues them through workers.queues.enqueue_sms.
        import workers.queues as queues
        from workers.queues import enqueue_sms

        held: list[int] = []
        queues.enqueue_sms = lambda _queue, ids, _intervals=None: held.extend(ids)
        enqueue_leads(queue, ids)
        took = drain(redis, queue, args.profile)
        queues.enqueue_sms = enqueue_sms
        with psycopg.connect(url) as conn:
            done = conn.execute("SELECT count(*) FROM lead WHERE status <> 'received'").fetchone()[0]
            deadlines = conn.execute("SELECT count(*) FROM lead_deadline").fetchone()[0]
        enqueue_sms(queue, held, get_settings().sms_retry_intervals)
        sms_took = drain(redis, queue)
        with psycopg.connect(url) as conn:
            sms = conn.execute("SELECT count(*) FROM sms_message WHERE status = 'sent'").fetchone()[0]
        results["tier"] = {"leads": done, "seconds": round(took, 2), "leads_per_s": round(done / took, 1),
                           "deadline_rows": deadlines, "sms_queued": len(held)}
        results["sms"] = {"sent": sms, "seconds": round(sms_took, 2), "sms_per_s": round(sms / sms_took, 1),
                          "gateway": "logging"}
        noop.append(noop_rate(redis, queue, args.noop))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("TRUNCATE lead RESTART IDENTITY CASCADE")
        make_pending(url, args.pending, args.due)
        from rq import Queue

        queue.enqueue_many([Queue.prepare_data("workers.tasks.sweep_deadlines", result_ttl=0, timeout=3600)])
        took = drain(redis, queue)
        with psycopg.connect(url) as conn:
            missed = conn.execute("SELECT count(*) FROM lead_deadline WHERE state = 'missed'").fetchone()[0]
            pending = conn.execute("SELECT count(*) FROM lead_deadline WHERE state = 'pending'").fetchone()[0]
            visits = conn.execute("SELECT count(*) FROM visit").fetchone()[0]
        results["sweep"] = {"pending_before": args.pending, "due": args.due, "missed": missed,
                            "pending_after": pending, "visits_requested": visits, "seconds": round(took, 2),
                            "deadlines_per_s": round(missed / took, 1)}
        noop.append(noop_rate(redis, queue, args.noop))
        floor = sorted(noop)[1]
        results["noop"] = {"jobs_per_s_runs": [round(x, 1) for x in noop], "jobs_per_s_median": round(floor, 1)}
        results["ratio"] = {"tier": round(results["tier"]["leads_per_s"] / floor, 2),
                            "sms": round(results["sms"]["sms_per_s"] / floor, 2),
                            "sweep": round(results["sweep"]["deadlines_per_s"] / floor, 2), "goal": 0.5}
        print(json.dumps(results, indent=2))
        redis.flushdb()
        ctx.engine.dispose()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        servers.stop()


if __name__ == "__main__":
    main()
