"""Issue 24: two deployments on one Redis server never hear each other. Deployment A is this run's
(its database, Redis db QUANZU_TEST_REDIS_DB); B has a database of its own on another Redis db, C
one on A's very Redis db (pub/sub ignores db numbers: only the namespace keeps them apart). All
three have the same usernames, a screen and a squad member connected, an API process and a worker,
and leads flowing. Every socket gets every message of its own stream exactly once (seq 1..N, N read
from its own deployment's Redis) and nothing about another deployment's leads (B's and C's lead ids
start at 1,000,000 and 2,000,000)."""
from __future__ import annotations

import uuid
from types import SimpleNamespace

import httpx
import psycopg
from redis import Redis
from sqlalchemy import text

from service.core.auth import create_access_token, hash_api_key, hash_password, new_api_key
from service.core.runtime import with_database, with_redis_db
from tests.mobile_api.conftest import ApiProcess, open_socket
from tests.mobile_api.test_field import p0_lead
from tests.procs import WorkerProcess
from tests.waiting import until

LEADS = 8  # per deployment


def _new_deployment(servers, district_data, redis_url: str, users: dict[str, tuple[str, str | None]],
                    first_lead_id: int) -> SimpleNamespace:
    from dispatch.district import import_district
    from service.core.db import make_sync_engine, sync_session
    from service.core.migrate import upgrade
    from service.core.models import ApiKey, User

    admin = servers[0]
    name = f"quanzu_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    upgrade(url)
    engine = make_sync_engine(url, pool_size=1)
    key = new_api_key()
    with sync_session(engine) as s:
        import_district(s, district_data)
        for username, (role, team) in users.items():
            s.add(User(username=username, password_hash=hash_password("pw-123456"), role=role, team_code=team))
        s.add(ApiKey(name="platform", key_hash=hash_api_key(key), prefix=key[:8]))
        s.execute(text(f"ALTER SEQUENCE lead_id_seq RESTART WITH {first_lead_id}"))
        s.commit()
    engine.dispose()
    return SimpleNamespace(database_url=url, redis_url=redis_url, name=name, key=key, admin=admin,
                           prefix=f"quanzu:{name}")


def _drop(d) -> None:
    with psycopg.connect(d.admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{d.name}" WITH (FORCE)')


def _on_duty(database_url: str, team: str, police: str) -> None:
    """As make_squad does in A: the squad on duty at home, its police member linked to the account."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE team SET status = 'on_duty', last_lon = home_lon, last_lat = home_lat, last_at = now() "
                     "WHERE code = %s", (team,))
        conn.execute("UPDATE team_member SET username = %s WHERE team_code = %s AND role = 'police'", (police, team))


def _lead_ids(data) -> set[int]:
    """Every lead a message speaks of."""
    out: set[int] = set()
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "lead_id" and isinstance(v, int):
                out.add(v)
            elif k == "lead_ids" and isinstance(v, list):
                out.update(v)
            elif k == "lead" and isinstance(v, dict) and isinstance(v.get("id"), int):
                out.add(v["id"])
            else:
                out |= _lead_ids(v)
    elif isinstance(data, list):
        for v in data:
            out |= _lead_ids(v)
    return out


async def _drain(sock, quiet: float = 1.0) -> None:
    try:
        while True:
            await sock.recv(timeout=quiet)
    except TimeoutError:
        pass


async def test_two_deployments_on_one_redis_hear_nothing_of_each_other_and_lose_nothing(
        servers, settings, district, make_squad, own_team, tmp_path):
    squad = make_squad(own_team)
    police = squad.name("police")
    commander = f"cmd-{uuid.uuid4().hex[:6]}"
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("INSERT INTO app_user (username, password_hash, role, active) VALUES (%s, 'x', 'commander', true)",
                     (commander,))
        api_key = new_api_key()
        conn.execute("INSERT INTO api_key (name, key_hash, prefix) VALUES (%s, %s, 'x')",
                     (f"two-{uuid.uuid4().hex[:6]}", hash_api_key(api_key)))
    users = {police: ("police", own_team), commander: ("commander", None)}
    other_db = with_redis_db(servers[1], 8)
    Redis.from_url(other_db).flushdb()
    a = SimpleNamespace(database_url=settings.database_url, redis_url=settings.redis_url, key=api_key,
                        prefix=settings.redis_prefix)
    b = _new_deployment(servers, district, other_db, users, 1_000_000)
    c = _new_deployment(servers, district, settings.redis_url, users, 2_000_000)
    procs: list = []
    try:
        for d in (b, c):
            _on_duty(d.database_url, own_team, police)
        for i, d in enumerate((a, b, c)):
            d.api = ApiProcess(d).start()
            d.worker = WorkerProcess(tmp_path / f"worker-{i}.log", DATABASE_URL=d.database_url,
                                     REDIS_URL=d.redis_url).start()
            procs += [d.api, d.worker]
            secret = settings.secret_key
            d.board = await open_socket(d.api.ws, {"Authorization": "Bearer " + create_access_token(
                commander, "commander", None, secret, 30)}, path="/api/v1/board/ws")
            d.squad = await open_socket(d.api.ws, {"Authorization": "Bearer " + create_access_token(
                police, "police", own_team, secret, 30)})
        for d in (a, b, c):
            d.ids = set()
        async with httpx.AsyncClient(timeout=30) as http:
            for _ in range(LEADS):  # interleaved: all three busy at once
                for d in (a, b, c):
                    r = await http.post(d.api.http + "/api/v1/leads", json=p0_lead(), headers={"X-API-Key": d.key})
                    assert r.status_code == 202, r.text
                    d.ids.add(r.json()["id"])
        for d in (a, b, c):
            def worked(d=d):
                with psycopg.connect(d.database_url) as conn:
                    return conn.execute("SELECT count(*) FROM lead WHERE status <> 'received'").fetchone()[0] == LEADS
            await until(worked, 90, f"every lead of {d.prefix} worked")
        assert a.ids < set(range(1, 1_000_000)) and min(b.ids) >= 1_000_000 and min(c.ids) >= 2_000_000

        for d in (a, b, c):
            redis = Redis.from_url(d.redis_url)
            for sock, stream in ((d.board, "board"), (d.squad, police)):
                await _drain(sock)
                last = int(redis.get(f"{d.prefix}:ws:q:{stream}") or 0)
                while not sock.got or sock.got[-1]["seq"] < last:
                    await sock.recv(timeout=10)
                seqs = [m["seq"] for m in sock.got]
                assert seqs == list(range(1, last + 1)), (d.prefix, stream, seqs)  # none dropped, none twice
                spoken_of = set().union(*(_lead_ids(m["data"]) for m in sock.got))
                assert spoken_of <= d.ids, (d.prefix, stream, sorted(spoken_of - d.ids)[:5])  # nothing crossed
            assert {m["type"] for m in d.board.got} >= {"lead.created", "lead.updated"}
            assert any(m["type"] == "offer" for m in d.squad.got)
            # the stream's own key is in the namespace: nothing of the old shared names was written
            assert not redis.exists("quanzu:ws:s:board", "quanzu:ws:live", f"quanzu:ws:s:{police}")
    finally:
        for p in procs:
            p.stop()
        for d in (b, c):
            _drop(d)
