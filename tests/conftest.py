"""Real PostgreSQL and Redis for every test run: a fresh database and a flushed Redis db.

DATABASE_URL / REDIS_URL when set; else the local services on 127.0.0.1 when they answer;
else embedded servers started for the run. Nothing of ours is mocked."""
from __future__ import annotations

import os
import uuid

import httpx
import psycopg
import pytest
from redis import Redis
from rq import SimpleWorker

from service.core.runtime import with_database, with_redis_db
from service.core.settings import plain_url
from tests.data import SHARED_DISTRICT
from tests.servers import find_servers

TEST_REDIS_DB = int(os.environ.get("QUANZU_TEST_REDIS_DB", "15"))


@pytest.fixture(scope="session")
def servers():
    """(admin database URL, Redis URL) of the servers this run uses."""
    # QUANZU_LOCAL_HOST=0.0.0.1 (nothing answers there) forces the embedded servers, as on a laptop.
    found = find_servers(fast=True, host=os.environ.get("QUANZU_LOCAL_HOST", "127.0.0.1"))
    yield plain_url(found.database_url), found.redis_url
    found.stop()


@pytest.fixture(scope="session")
def database_url(servers):
    """A fresh database for this run, migrated to head; dropped at the end."""
    from service.core.migrate import upgrade

    admin = servers[0]
    name = f"quanzu_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    upgrade(url)
    yield url
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def redis_url(servers):
    url = with_redis_db(servers[1], TEST_REDIS_DB)
    Redis.from_url(url).flushdb()
    return url


@pytest.fixture(scope="session")
def settings(database_url, redis_url):
    """Settings for the app under test; the environment says the same for worker code."""
    from service.core.settings import get_settings

    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = database_url, redis_url
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture(scope="session")
def sync_engine(settings):
    from service.core.db import make_sync_engine

    engine = make_sync_engine(settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def district(sync_engine):
    """The shared sample district (data we did not write), imported once per run."""
    if not SHARED_DISTRICT.exists():
        pytest.skip(f"shared district not found at {SHARED_DISTRICT}")
    from dispatch.district import import_district
    from geo.district import load_district_dir
    from service.core.db import sync_session

    data = load_district_dir(SHARED_DISTRICT)
    with sync_session(sync_engine) as session:
        import_district(session, data)
        session.commit()
    return data


@pytest.fixture(scope="session")
async def app(settings):
    from service.main import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                                 timeout=60) as c:
        yield c


@pytest.fixture
def clean(sync_engine, redis_url):
    """Start a test with no leads and an empty queue."""
    import psycopg.errors
    from sqlalchemy import exc, text

    # A worker of the live servers may still be finishing the previous test's jobs: its locks and
    # the TRUNCATE's can meet in a deadlock, which PostgreSQL breaks by failing one side. Try again.
    for attempt in range(5):
        try:
            with sync_engine.begin() as conn:
                conn.execute(text("TRUNCATE lead, lead_event, rejection, access_log, audit_head RESTART IDENTITY CASCADE"))
            break
        except exc.OperationalError as e:
            if not isinstance(e.orig, psycopg.errors.DeadlockDetected) or attempt == 4:
                raise
    Redis.from_url(redis_url).flushdb()


def _make_api_key(sync_engine, name: str) -> str:
    from service.core.auth import hash_api_key, new_api_key
    from service.core.db import sync_session
    from service.core.models import ApiKey

    key = new_api_key()
    with sync_session(sync_engine) as session:
        session.add(ApiKey(name=name, key_hash=hash_api_key(key), prefix=key[:8]))
        session.commit()
    return key


@pytest.fixture(scope="session")
def api_key(sync_engine) -> str:
    return _make_api_key(sync_engine, "test-platform")


@pytest.fixture(scope="session")
def source_headers(api_key) -> dict:
    return {"X-API-Key": api_key}


@pytest.fixture(scope="session")
def make_user(sync_engine, district):
    """make_user(role, team=None) → Authorization headers of a fresh user with that role."""
    from service.core.auth import create_access_token, hash_password
    from service.core.db import sync_session
    from service.core.models import User
    from service.core.settings import get_settings

    def make(role: str, team: str | None = None, password: str = "pw-123456") -> dict:
        name = f"{role}-{uuid.uuid4().hex[:6]}"
        with sync_session(sync_engine) as session:
            session.add(User(username=name, password_hash=hash_password(password), role=role, team_code=team))
            session.commit()
        token = create_access_token(name, role, team, get_settings().secret_key, 60)
        return {"Authorization": f"Bearer {token}", "X-Username": name}

    return make


@pytest.fixture(scope="session")
def commander(make_user) -> dict:
    return make_user("commander")


@pytest.fixture
def run_worker(app, redis_url):
    """Drain the lead queue with a real rq worker in this process (burst mode)."""
    from workers.queues import lead_queue

    async def run() -> None:
        await app.state.after_commit.drain()
        redis = Redis.from_url(redis_url)
        queue = lead_queue(redis, app.state.settings.queue_name)
        SimpleWorker([queue], connection=redis).work(burst=True, with_scheduler=False)

    return run
