"""Warnings sent per second through quanzu's SMS path with the Kannel gateway, against Kannel's own
`sendsms` driven directly in the same run.

    python bench/sms_gateway.py [--messages 1000]

A real Kannel on loopback (bearerbox + smsbox, fakesmsc as the SMSC: tests/channels/kannel.py) and
quanzu's API in its own process (Kannel calls it back with each message's delivery reports).

1. **Kannel alone**: one client sends `--messages` warnings (the Chinese default template, UCS-2,
   dlr-mask=31 and the dlr-url quanzu would give) to `sendsms` one after another. → messages/s.
2. **quanzu**: `--messages` pending `sms_message` rows (warnings), sent by `workers.tasks.send_sms`
   in jobs of 500 as the workers do (lock the row, hand it to Kannel, mark it sent, commit every 50).
   → messages/s; then how long until every row is `delivered` by Kannel's DLR calls to the API.

The ratio is quanzu's rate ÷ Kannel's (1.0: quanzu adds nothing to a send). Measured, never
asserted. Servers as the tests find them; a fresh database `quanzu_bench_sms_<hex>` (dropped at the
end) and Redis db 3 (flushed).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.core.runtime import with_database, with_redis_db  # noqa: E402
from service.core.settings import plain_url  # noqa: E402
from tests.channels.kannel import Api, Kannel, missing  # noqa: E402
from tests.servers import find_servers  # noqa: E402

REDIS_DB = int(os.environ.get("QUANZU_BENCH_REDIS_DB", "3"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1000)
    args = ap.parse_args()
    if missing():
        sys.exit(missing())

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally: stop Kannel, drop the database
    servers = find_servers(fast=False)
    admin = plain_url(servers.database_url)
    name = f"quanzu_bench_sms_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    redis_url = with_redis_db(servers.redis_url, REDIS_DB)
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = url, redis_url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    api = kannel = None
    try:
        from sqlalchemy import func, insert, select

        from dispatch.ladder.gateways import KannelGateway, Outgoing
        from dispatch.ladder.sms import active_templates
        from dispatch.models import SmsMessage
        from service.core.auth import hash_api_key, new_api_key
        from service.core.db import make_sync_engine, sync_session
        from service.core.logging import configure_logging
        from service.core.migrate import upgrade
        from service.core.models import ApiKey
        from workers import tasks

        configure_logging("WARNING", True)
        upgrade(url)
        Redis.from_url(redis_url).flushdb()
        engine = make_sync_engine(url, 2)
        key = new_api_key()
        with sync_session(engine) as session:
            session.add(ApiKey(name="sms-gateway", key_hash=hash_api_key(key), prefix=key[:8]))
            session.commit()
        api = Api(url, redis_url).start()
        kannel = Kannel(Path(tempfile.mkdtemp(prefix="quanzu-bench-kannel-")), api.url, key).start()
        gateway = KannelGateway(kannel.sendsms_url, "quanzu", kannel.password, "96110", api.url, key)
        tasks.ctx.__dict__["gateway"] = gateway
        body = active_templates().render("fake_investment", "王芳")
        n = args.messages

        # 1. Kannel alone: the same query quanzu sends (ids past ours: their DLRs get a 404)
        client = httpx.Client(timeout=10)
        t0 = time.perf_counter()
        for i in range(n):
            r = client.get(kannel.sendsms_url, params=gateway.query(Outgoing(
                f"139{i:08d}", body, f"direct-{i}", "warning", 10_000_000 + i)))
            assert r.text.startswith(("0:", "3:")), r.text
        direct = n / (time.perf_counter() - t0)

        # 2. quanzu's path
        with engine.begin() as conn:
            ids = list(conn.execute(insert(SmsMessage).returning(SmsMessage.id), [
                {"purpose": "warning", "to_phone": f"138{i:08d}", "body": body, "idempotency_key": f"bench-{i}",
                 "params": {"name": "王芳", "hotline": "96110"}} for i in range(n)]).scalars())
        t0 = time.perf_counter()
        for i in range(0, n, 500):
            tasks.send_sms(ids[i:i + 500])
        sent_s = time.perf_counter() - t0
        quanzu = n / sent_s
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                done = conn.execute(select(func.count()).select_from(SmsMessage)
                                    .where(SmsMessage.status == "delivered")).scalar_one()
            if done == n:
                break
            time.sleep(0.05)
        delivered_s = time.perf_counter() - t0
        print(f"messages: {n} (Chinese warning, {len(body)} characters, UCS-2, dlr-mask=31)")
        print(f"Kannel sendsms alone:      {direct:8.0f} msg/s")
        print(f"quanzu send_sms → Kannel:  {quanzu:8.0f} msg/s   ratio {quanzu / direct:.2f}")
        print(f"every row delivered (DLR): {delivered_s:8.2f} s after the first send ({done}/{n} delivered)")
        print(f"fakesmsc received: {len(kannel.received())}")
    finally:
        if kannel:
            kannel.stop()
        if api:
            api.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
