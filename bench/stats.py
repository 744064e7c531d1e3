"""KPI statistics over a big table: GET /api/v1/stats against a hand-written SQL GROUP BY of the
same figures, in the same run, on leads bulk-loaded by the generator.

    python bench/stats.py [--leads 1000000] [--runs 3] [--seed 7]

A fresh database `quanzu_bench_stats_<hex>` (dropped at the end) on the servers the tests use
(DATABASE_URL / REDIS_URL, else 127.0.0.1, else embedded); the shared sample district imported;
`--leads` placed, tiered and worked leads (calls, SMS, visits, assignments, callbacks, sign
deadlines, cases) written by `service.tools.simulate_bulk.bulk_load` (COPY), then ANALYZE. Then, alternating,
`--runs` times each: (a) the baseline, one hand-written GROUP BY street over the same rows through a
bare asyncpg connection (no HTTP, no Python rows); (a') the same with the district total row
(GROUP BY ROLLUP), as /stats also answers it; (b) GET /stats?group_by=street over HTTP (httpx
over ASGI into the app, JSON out). Goal (issue 14): (b) ≤ 1.5 × (a). Measured, never asserted.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.core.runtime import with_database, with_redis_db  # noqa: E402
from service.core.settings import find_sample_district, plain_url  # noqa: E402
from service.tools import simulate as sim  # noqa: E402
from service.tools.simulate_bulk import bulk_load  # noqa: E402
from tests.servers import find_servers  # noqa: E402

RANGE = ("2026-09-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00")

# What one would write by hand for the same figures by street: no CTE per table, no GROUPING SETS.
BASELINE = """
SELECT l.street_code, count(*) AS leads, count(DISTINCT coalesce(l.phone, 'id:' || upper(l.id_number))) AS people,
  count(l.signed_at), count(*) FILTER (WHERE l.signed_at <= coalesce(d.due_at, (l.tier_detail #>> '{deadlines,sign}')::timestamptz)),
  count(c.lead_id), count(*) FILTER (WHERE c.connected), sum(c.n), sum(s.n),
  count(v.lead_id), count(*) FILTER (WHERE v.done),
  count(*) FILTER (WHERE l.status = 'closed' AND l.outcome NOT IN ('duplicate', 'false_alarm')),
  count(*) FILTER (WHERE l.status = 'closed' AND l.outcome = 'dissuaded'),
  sum(cb.due), sum(cb.done), sum(k.n),
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM l.signed_at - l.received_at)),
  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM l.signed_at - l.received_at)),
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM c.first_at - l.received_at)),
  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM c.first_at - l.received_at)),
  percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM a.on_scene - l.received_at)),
  percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM a.on_scene - l.received_at))
FROM lead l
LEFT JOIN (SELECT lead_id, count(*) n, bool_or(result = 'connected') connected, min(at) first_at
           FROM call_attempt GROUP BY lead_id) c ON c.lead_id = l.id
LEFT JOIN (SELECT lead_id, count(*) n FROM sms_message WHERE purpose = 'warning' AND status IN ('sent', 'delivered')
           GROUP BY lead_id) s ON s.lead_id = l.id
LEFT JOIN (SELECT lead_id, bool_or(status = 'done' AND met_in_person) done FROM visit GROUP BY lead_id) v
       ON v.lead_id = l.id
LEFT JOIN (SELECT lead_id, min(arrived_at) on_scene FROM assignment GROUP BY lead_id) a ON a.lead_id = l.id
LEFT JOIN (SELECT lead_id, count(*) FILTER (WHERE done_at IS NOT NULL OR due_at <= now()) due, count(done_at) done
           FROM callback GROUP BY lead_id) cb ON cb.lead_id = l.id
LEFT JOIN (SELECT post_warning_lead_id lead_id, count(*) n FROM case_report GROUP BY 1) k ON k.lead_id = l.id
LEFT JOIN lead_deadline d ON d.lead_id = l.id AND d.name = 'sign'
WHERE l.received_at >= $1::timestamptz AND l.received_at < $2::timestamptz
GROUP BY l.street_code"""
# The same with the district total beside the streets, as /stats answers it (GROUP BY ROLLUP).
BASELINE_TOTAL = BASELINE.replace("GROUP BY l.street_code", "GROUP BY ROLLUP (l.street_code)")


async def measure(database_url: str, redis_url: str, runs: int) -> tuple[list[float], list[float], int]:
    from datetime import datetime

    from service.core.auth import create_access_token
    from service.core.settings import get_settings
    from service.main import create_app

    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = database_url, redis_url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(48))  # serve and worker refuse the development key
    get_settings.cache_clear()
    settings = get_settings()
    app = create_app(settings)
    with psycopg.connect(plain_url(database_url), autocommit=True) as c:  # a token speaks for a user that exists
        c.execute("INSERT INTO app_user (username, password_hash, role) VALUES ('bench', '-', 'commander') "
                  "ON CONFLICT (username) DO NOTHING")
    token = create_access_token("bench", "commander", None, settings.secret_key, 60)
    since, until = (datetime.fromisoformat(t) for t in RANGE)
    base, total, api = [], [], []
    async with app.router.lifespan_context(app):
        conn = await asyncpg.connect(plain_url(database_url))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench",
                                     timeout=600) as client:
            for _ in range(runs):
                t = time.perf_counter()
                rows = await conn.fetch(BASELINE, since, until)
                base.append(time.perf_counter() - t)
                t = time.perf_counter()
                await conn.fetch(BASELINE_TOTAL, since, until)
                total.append(time.perf_counter() - t)
                t = time.perf_counter()
                r = await client.get("/api/v1/stats", params={"group_by": "street", "from": RANGE[0], "to": RANGE[1]},
                                     headers={"Authorization": f"Bearer {token}"})
                api.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
                body = r.json()
                assert sum(x["leads"] for x in body["rows"]) == sum(x["leads"] for x in rows) == body["total"]["leads"]
        await conn.close()
    return base, total, api, body["total"]["leads"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--leads", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--keep", action="store_true", help="keep the database (its URL is printed) to look into")
    args = ap.parse_args()
    found = find_servers(fast=True)
    admin = plain_url(found.database_url)
    name = f"quanzu_bench_stats_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    try:
        from dispatch.district import import_district
        from geo.district import load_district_dir
        from service.core.db import make_sync_engine, sync_session
        from service.core.migrate import upgrade

        upgrade(url)
        engine = make_sync_engine(url)
        with sync_session(engine) as session:
            import_district(session, load_district_dir(os.environ.get("QUANZU_DISTRICT_DIR")
                                                       or find_sample_district()))
            session.commit()
            area = sim.Area.load(session)
        engine.dispose()
        with psycopg.connect(url) as conn:
            report = bulk_load(conn, area, args.leads, seed=args.seed,
                               progress=lambda n: print(f"  {n:,} leads", file=sys.stderr)
                               if n % 200_000 == 0 else None)
            conn.commit()
        t = time.perf_counter()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")
        analyze = time.perf_counter() - t
        redis = with_redis_db(found.redis_url, int(os.environ.get("QUANZU_BENCH_REDIS_DB", "13")))
        base, total, api, leads = asyncio.run(measure(url, redis, args.runs))
        b, bt, a = statistics.median(base), statistics.median(total), statistics.median(api)
        print(f"bulk load: {report.leads:,} leads in {report.seconds:.1f} s "
              f"({report.leads / report.seconds:,.0f} leads/s; rows {dict(report.rows)}); ANALYZE {analyze:.1f} s")
        print(f"(a) hand-written GROUP BY: {', '.join(f'{x:.2f}' for x in base)} s (median {b:.2f} s)")
        print(f"(a') the same with the total row (ROLLUP): {', '.join(f'{x:.2f}' for x in total)} s "
              f"(median {bt:.2f} s)")
        print(f"(b) GET /stats?group_by=street: {', '.join(f'{x:.2f}' for x in api)} s (median {a:.2f} s)")
        print(f"ratio (b)/(a) = {a / b:.2f} (goal <= 1.5), (b)/(a') = {a / bt:.2f}, over {leads:,} leads")
    finally:
        if args.keep:
            print(f"kept: {url}")
        else:
            with psycopg.connect(admin, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            found.stop()


if __name__ == "__main__":
    main()
