"""Historic import (`quanzu import-leads FILE --historic`) against plain batch intake, same run.

    python bench/historic.py [--leads 100000] [--profile]

1. **historic import**: `--leads` leads (the shared feed's accepted leads, cycled with fresh source
   ids) written as JSON lines and loaded by the command itself (a `quanzu` process: reading,
   validating, storing `historic`, placing and tiering, matching cases; 500 leads a transaction).
   → leads/s, and a check that it started nothing (no deadline, SMS, visit, job or push).
2. **plain batch intake**: the same leads with other source ids stored through intake's own
   repository path (`dispatch.intake.service.take_batch` on asyncpg, 1,000 a transaction, as
   `POST /api/v1/leads/batch` does without HTTP) — stored `received`, not placed or tiered.
   → leads/s.

The ratio is historic ÷ batch: what placing and tiering every lead on the way in costs against
only storing it. Measured, never asserted. Servers as the tests find them; a fresh database
`quanzu_bench_historic_<hex>` (dropped at the end) and Redis db 3 (flushed).
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg
import orjson
import psycopg
from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.core.runtime import with_database, with_redis_db  # noqa: E402
from service.core.settings import find_sample_district, plain_url  # noqa: E402
from tests.servers import find_servers  # noqa: E402

REDIS_DB = int(os.environ.get("QUANZU_BENCH_REDIS_DB", "3"))
DISTRICT = find_sample_district() or ROOT.parent / "shared" / "data" / "district"


def feed(n: int, prefix: str) -> list[dict]:
    from dispatch.intake.validation import validate_lead

    base = []
    with (DISTRICT / "leads.jsonl").open(encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            if validate_lead(obj).lead is not None:
                base.append(obj)
    return [{**base[i % len(base)], "source_id": f"{prefix}-{i}"} for i in range(n)]


async def batch_intake(url: str, leads: list[dict]) -> float:
    from dispatch.intake.service import take_batch

    conn = await asyncpg.connect(plain_url(url))
    try:
        t = time.perf_counter()
        for i in range(0, len(leads), 1000):
            async with conn.transaction():
                await take_batch(conn, leads[i:i + 1000], "source:bench")
        return time.perf_counter() - t
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--profile", action="store_true", help="run the import in this process under cProfile")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: drop the database
    servers = find_servers(fast=False)
    admin = plain_url(servers.database_url)
    name = f"quanzu_bench_historic_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    redis_url = with_redis_db(servers.redis_url, REDIS_DB)
    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    try:
        from dispatch.district import import_district
        from geo.district import load_district_dir
        from service.core.db import make_sync_engine, sync_session
        from service.core.migrate import upgrade

        upgrade(url)
        with sync_session(make_sync_engine(url, 1)) as session:
            import_district(session, load_district_dir(DISTRICT))
            session.commit()
        redis = Redis.from_url(redis_url)
        redis.flushdb()
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "historic.jsonl"
            with file.open("wb") as f:
                for lead in feed(args.leads, "HIST"):
                    f.write(orjson.dumps(lead) + b"\n")
            t = time.perf_counter()
            if args.profile:
                from service.cli.imports import import_leads

                prof = cProfile.Profile()
                prof.runcall(import_leads, file, historic=True, actor="import")
                pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
            else:
                subprocess.run([sys.executable, "-m", "service.cli", "import-leads", str(file), "--historic"],
                               env=env, check=True, stderr=subprocess.DEVNULL)
            historic_s = time.perf_counter() - t
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT count(*) FROM lead WHERE historic AND tier IS NOT NULL").fetchone()[0]
            started = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                       for t in ("lead_deadline", "sms_message", "visit", "feedback_delivery")}
        started["redis_keys"] = len([k for k in redis.scan_iter("*") if not k.startswith(b"rq:worker")])
        batch_s = asyncio.run(batch_intake(url, feed(args.leads, "LIVE")))
        with psycopg.connect(url) as conn:
            live = conn.execute("SELECT count(*) FROM lead WHERE NOT historic").fetchone()[0]
        results = {"historic": {"leads": stored, "seconds": round(historic_s, 2),
                                "leads_per_s": round(stored / historic_s, 1), "started": started},
                   "batch_intake": {"leads": live, "seconds": round(batch_s, 2),
                                    "leads_per_s": round(live / batch_s, 1)}}
        results["ratio"] = round(results["historic"]["leads_per_s"] / results["batch_intake"]["leads_per_s"], 3)
        print(json.dumps(results, indent=2))
        redis.flushdb()
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        servers.stop()


if __name__ == "__main__":
    main()
