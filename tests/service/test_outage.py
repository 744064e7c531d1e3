"""PostgreSQL going away is not the client's fault: 503 with Retry-After, never a 500."""
from __future__ import annotations

import tempfile
from pathlib import Path

import httpx
import pytest

from tests.factories import make_lead
from tests.scrape import value


@pytest.mark.usefixtures("district")
async def test_push_during_a_database_outage_is_503(settings, api_key, redis_url):
    from service.core.auth import create_access_token, hash_api_key
    from service.core.db import make_sync_engine, sync_session
    from service.core.migrate import upgrade
    from service.core.models import ApiKey
    from service.main import create_app
    from service.tools.embedded import EmbeddedPostgres

    base = Path(tempfile.mkdtemp(prefix="quanzu-outage-"))
    base.chmod(0o755)
    pg = EmbeddedPostgres(base, fast=True)
    url = pg.start()
    try:
        upgrade(url)
        engine = make_sync_engine(url)
        with sync_session(engine) as session:
            session.add(ApiKey(name="outage", key_hash=hash_api_key(api_key), prefix="x"))
            session.commit()
        engine.dispose()
        app = create_app(settings.model_copy(update={"database_url": url, "redis_url": redis_url}))
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
                headers = {"X-API-Key": api_key}
                assert (await client.post("/api/v1/leads", json=make_lead(), headers=headers)).status_code == 202
                before = (await client.get("/metrics")).text
                pg.stop()
                r = await client.post("/api/v1/leads", json=make_lead(), headers=headers)
                assert r.status_code == 503 and r.json()["error"] == "unavailable"
                assert r.headers["retry-after"] == "5"
                assert (await client.get("/readyz")).status_code == 503
                # SQLModel routes too: the driver's error arrives wrapped, and is classified by its cause
                token = create_access_token("cmd", "commander", None, settings.secret_key, 5)
                bearer = {"Authorization": f"Bearer {token}"}
                for answer in (await client.get("/api/v1/leads", headers=bearer),
                               await client.get("/api/v1/leads/1", headers=bearer),
                               await client.get("/api/v1/geo/beats", headers=bearer),
                               await client.get("/api/v1/rejections", headers=bearer),
                               await client.post("/api/v1/auth/token", data={"username": "u", "password": "p"}),
                               await client.post("/api/v1/leads", json=make_lead(), headers={"X-API-Key": "qz_new"})):
                    assert answer.status_code == 503, (answer.request.url, answer.text)
                    assert answer.json()["error"] == "unavailable" and answer.headers["retry-after"]
                # /metrics still answers, says what is down, and counted every 503 on PostgreSQL
                app.state.metrics_snapshot = None
                metrics = await client.get("/metrics")
                assert metrics.status_code == 200
                assert value(metrics.text, "quanzu_ready", dependency="database") == 0
                assert value(metrics.text, "quanzu_ready", dependency="redis") == 1
                errors = {"dependency": "database", "process": "api"}
                assert (value(metrics.text, "quanzu_dependency_errors_total", **errors)
                        - value(before, "quanzu_dependency_errors_total", **errors)) == 7
                assert "quanzu_deadlines_overdue" not in metrics.text  # not reported as zero: unknown
    finally:
        pg.stop()


async def test_an_intake_connection_whose_server_went_away_is_not_handed_out_again(database_url):
    """PostgreSQL killed -9 in the middle of a statement can leave a connection half open ("another
    operation is in progress"): the next push that got it answered 500. `acquire` closes it instead,
    and that error is a 503 like the other ways of losing the server (found by bench/kills.py)."""
    import asyncpg

    from service.core.db import acquire, make_intake_pool
    from service.core.errors import connection_lost, is_unavailable

    half_open = asyncpg.exceptions.InternalClientError("cannot switch to state 11; another operation (2) is in "
                                                       "progress")
    assert is_unavailable(half_open) and connection_lost(half_open)
    assert not connection_lost(asyncpg.exceptions.LockNotAvailableError("lock timeout"))
    pool = await make_intake_pool(database_url, 1)
    try:
        with pytest.raises(asyncpg.exceptions.InternalClientError):
            async with acquire(pool) as conn:
                broken = conn.get_server_pid()
                raise half_open
        with pytest.raises(asyncpg.exceptions.LockNotAvailableError):  # the server is there: the connection stays
            async with acquire(pool) as conn:
                fresh = conn.get_server_pid()
                raise asyncpg.exceptions.LockNotAvailableError("lock timeout")
        assert fresh != broken  # closed, and a new one opened
        async with acquire(pool) as conn:
            assert conn.get_server_pid() == fresh and await conn.fetchval("SELECT 1") == 1
    finally:
        await pool.close()
