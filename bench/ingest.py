"""Ingest throughput: quanzu's POST /api/v1/leads and /api/v1/leads/batch, each against its floor.

    python bench/ingest.py [--seconds 5] [--concurrency 16] [--batch 1000]

Single ingest is compared with a bare FastAPI echo endpoint (bench/echo_app.py: read the body,
return it) under the same load; batch ingest with a raw asyncpg INSERT of the same rows into the
same `lead` table, in statements of the same size, at the same concurrency. Goals (the issue):
single ≥ 50 % of echo, batch ≥ 30 % of raw INSERT. Speed is measured, never asserted: the exit
code is 0 whatever the ratios.

Servers as in tests/conftest.py: DATABASE_URL / REDIS_URL when set, else PostgreSQL and Redis on
127.0.0.1 when they answer, else embedded ones in a temporary directory. A fresh database
`quanzu_bench_<hex>` (dropped at the end) and Redis db 14, or `--redis-db` (flushed). quanzu
(`quanzu serve`) and the echo app each run as one uvicorn process with one worker and uvicorn's default loop and
parser (uvloop, httptools). The load comes from this process: asyncio connections speaking raw
HTTP/1.1 keep-alive, one request in flight each, bodies built before the clock starts.

Client, servers and PostgreSQL share the machine, so kinds of run alternate (echo, quanzu, ...,
echo, quanzu, ...), every run is printed next to the median, and each run says how much CPU the
client, the server, PostgreSQL and everything else on the machine used while it was measured.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import importlib.metadata
import itertools
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path

import asyncpg
import orjson
import psycopg
import uvloop
from redis import Redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# The service's own SQL and row shape, so the floors insert exactly what the endpoints insert.
from dispatch.intake.repository import _TYPES, INSERT_MANY, INSERT_ONE, LEAD_COLUMNS, lead_row
from dispatch.intake.schemas import LEAD_EXAMPLE
from dispatch.intake.validation import validate_lead
from dispatch.policy import load_policy
from service.core.runtime import with_database, with_redis_db
from service.core.settings import find_sample_district, plain_url
from tests.servers import find_servers

SHARED_LEADS = (find_sample_district() or ROOT.parent / "shared" / "data" / "district") / "leads.jsonl"
BENCH_REDIS_DB = 14
HOST = "127.0.0.1"
ACTOR = "source:bench"
GOAL_SINGLE, GOAL_BATCH = 0.50, 0.30
NOISY = 0.25  # other processes using more than this share of a core make a run suspect

# The floors: the columns the endpoints fill, as plain INSERTs (no ON CONFLICT, no RETURNING, no
# lead_event). For 1,000-row batches INSERT … SELECT FROM unnest is the fastest INSERT through
# asyncpg (≈ 1.5× executemany of the one-row INSERT on the reference machine; COPY is faster
# still, ≈ 1.25× unnest, but is not an INSERT and cannot skip duplicates).
_COLS = ", ".join(LEAD_COLUMNS)
RAW_INSERT_ONE = (f"INSERT INTO lead ({_COLS}, status) VALUES "
                  f"({', '.join(f'${i + 1}::{t}' for i, t in enumerate(_TYPES))}, 'received')")
RAW_INSERT_MANY = (f"INSERT INTO lead ({_COLS}, status) SELECT *, 'received' FROM "
                   f"unnest({', '.join(f'${i + 1}::{t}[]' for i, t in enumerate(_TYPES))})")
TRUNCATE = "TRUNCATE lead, lead_event, rejection RESTART IDENTITY CASCADE"
_SOURCE_ID, _PHONE = LEAD_COLUMNS.index("source_id"), LEAD_COLUMNS.index("phone")


# ---------------------------------------------------------------- PostgreSQL and Redis


@dataclass
class Backing:
    """PostgreSQL and Redis for the run, where they came from, and what to undo at the end."""
    admin_url: str = ""
    redis_url: str = ""
    pg_origin: str = ""
    redis_origin: str = ""
    database: str = ""
    database_url: str = ""
    redis_db: int = BENCH_REDIS_DB
    started: list = field(default_factory=list)
    _conn: psycopg.Connection | None = None

    def pick(self) -> None:
        # fast=False: fsync off (the tests' setting) would flatter every INSERT measured here.
        found = find_servers(fast=False, host=HOST)
        self.started.extend(found.started)
        self.pg_origin, self.redis_origin = found.database_from, found.redis_from
        self.admin_url = plain_url(found.database_url)
        self.redis_url = with_redis_db(found.redis_url, self.redis_db)

    def create_database(self) -> None:
        from service.core.migrate import upgrade

        name = f"quanzu_bench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.database, self.database_url = name, with_database(self.admin_url, name)
        upgrade(self.database_url)
        Redis.from_url(self.redis_url).flushdb()
        self._conn = psycopg.connect(self.database_url, autocommit=True)

    def create_api_key(self, env: dict) -> str:
        """`quanzu create-api-key`: the key is alone on the last line of its output."""
        done = subprocess.run([sys.executable, "-m", "service.cli", "create-api-key", "--name", "bench"], env=env,
                              cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"quanzu create-api-key failed:\n{done.stdout}{done.stderr}")
        return done.stdout.strip().splitlines()[-1]

    def reset(self) -> None:
        """No leads and an empty queue before each run, and a checkpoint, so every run starts alike
        (same index sizes, no checkpoint left over from the run before)."""
        self._conn.execute(TRUNCATE)
        with contextlib.suppress(psycopg.Error):  # needs superuser or pg_checkpoint
            self._conn.execute("CHECKPOINT")
        Redis.from_url(self.redis_url).flushdb()

    def leads_stored(self) -> int:
        return self._conn.execute("SELECT count(*) FROM lead").fetchone()[0]

    def sessions(self) -> int | None:
        """Connections ever opened to our database (PostgreSQL ≥ 14): a pool that churns shows here."""
        try:
            row = self._conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            return row.fetchone()[0]
        except psycopg.Error:
            return None

    def info(self) -> dict:
        pg = {k: self._conn.execute(f"SHOW {k}").fetchone()[0]
              for k in ("server_version", "fsync", "synchronous_commit", "shared_buffers")}
        server = Redis.from_url(self.redis_url).info("server")
        return {"pg": pg, "redis": server.get("valkey_version") or server.get("redis_version")}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self.database:
            with contextlib.suppress(Exception), psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            self.database = ""
        if self.redis_url:
            with contextlib.suppress(Exception):
                Redis.from_url(self.redis_url).flushdb()
        for s in reversed(self.started):
            s.stop()
        self.started.clear()


# ---------------------------------------------------------------- servers under test

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_us() -> None:
    # PR_SET_PDEATHSIG (1): a server must not outlive a kill -9 of the bench.
    if _libc is not None:
        _libc.prctl(1, signal.SIGTERM, 0, 0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Server:
    """One uvicorn process, up once `probe` (method, path) answers 2xx."""

    def __init__(self, name: str, args: list[str], env: dict, probe: tuple[str, str]):
        self.name, self.port = name, _free_port()
        fd, self.log_path = tempfile.mkstemp(prefix=f"quanzu-bench-{name}-", suffix=".log")
        with os.fdopen(fd, "wb") as log:  # the server keeps its own copy of the descriptor
            self.proc = subprocess.Popen([*args, "--port", str(self.port)], env=env, cwd=ROOT,
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         preexec_fn=_die_with_us)  # noqa: PLW1509 (no threads here yet)
        try:
            self._wait(*probe)
        except BaseException:
            self.stop()
            raise

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait(self, method: str, path: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                req = urllib.request.Request(f"http://{HOST}:{self.port}{path}", method=method,
                                             data=b"{}" if method == "POST" else None,
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=2) as r:
                    if 200 <= r.status < 300:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer {method} {path} in {timeout:g} s:\n{self.tail()}")
            time.sleep(0.1)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(Path(self.log_path).read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown: lifespan, pools
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        Path(self.log_path).unlink(missing_ok=True)


# ---------------------------------------------------------------- what is pushed


def template_lead() -> dict:
    """A realistic lead: the first of the shared feed, else the contract's example."""
    if SHARED_LEADS.exists():
        with SHARED_LEADS.open(encoding="utf-8") as f:
            return orjson.loads(f.readline())
    return dict(LEAD_EXAMPLE)


class Leads:
    """Distinct leads from one template (source_id and phone vary). Numbers never repeat within a
    bench run, so no pushed lead is ever a duplicate."""

    def __init__(self) -> None:
        self.template = template_lead()
        self.numbers = itertools.count(1)
        checked = validate_lead(self.template)
        if checked.lead is None:
            raise SystemExit(f"the template lead is rejected: {checked.errors}")
        self._row = lead_row(checked.lead, checked.flags)
        n = next(self.numbers)  # the shortcut in row() must give what the service would store
        c = validate_lead(self.lead(n))
        if c.lead is None or lead_row(c.lead, c.flags) != self.row(n):
            raise SystemExit("bench rows differ from the service's lead_row()")

    def lane(self) -> str:
        """Which of the API's after-commit lanes every push takes (the policy of POLICY_FILE, as the
        server's): the urgent one sends an rq job at once after each commit, the ordinary one lingers."""
        urgent = load_policy(os.environ.get("POLICY_FILE") or None).urgent_lane(self.template)
        return ("each push may be P0 (Policy.urgent_lane): its job leaves at once, never lingering" if urgent else
                "each push takes the ordinary lane: its job lingers while the API is busy")

    @staticmethod
    def _key(n: int) -> tuple[str, str]:
        return f"BENCH{n:012d}", f"139{n % 10**8:08d}"

    def lead(self, n: int) -> dict:
        source_id, phone = self._key(n)
        t = self.template
        return {**t, "source_id": source_id, "subject": {**t["subject"], "phone": phone}}

    def row(self, n: int) -> tuple:
        """`repository.lead_row()` of `lead(n)`, without validating each lead again."""
        r = list(self._row)
        r[_SOURCE_ID], r[_PHONE] = self._key(n)
        return tuple(r)

    def body(self) -> bytes:
        return orjson.dumps(self.lead(next(self.numbers)))

    def batch_body(self, size: int) -> bytes:
        return orjson.dumps({"leads": [self.lead(next(self.numbers)) for _ in range(size)]})

    def next_row(self) -> tuple:
        return self.row(next(self.numbers))

    def batch_columns(self, size: int) -> list[list]:
        return [list(c) for c in zip(*(self.row(next(self.numbers)) for _ in range(size)))]


class Feed:
    """Payloads built before the clock starts. Should a run outpace the estimate, the rest are
    built on the fly and counted (`late`), so a short estimate shows instead of skewing quietly."""

    def __init__(self, build: Callable[[], object], count: int, cycle: bool = False):
        self.build, self.cycle = build, cycle
        self.items = [build() for _ in range(count)]
        self.i = self.late = 0

    def next(self):
        i = self.i
        self.i += 1
        if i < len(self.items):
            return self.items[i]
        if self.cycle:
            return self.items[i % len(self.items)]
        self.late += 1
        return self.build()


def http_request(port: int, path: str, api_key: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nX-API-Key: {api_key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


# ---------------------------------------------------------------- CPU accounting (Linux /proc)

_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(pid: int, thread: int | None = None) -> float:
    """CPU seconds of process `pid`, or of its thread `thread` alone."""
    try:
        with open(f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
    except (OSError, IndexError):
        return 0.0


def _read(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _pids_named(*names: str) -> list[int]:
    return [int(e.name) for e in os.scandir("/proc")
            if e.name.isdigit() and _read(f"/proc/{e.name}/comm").strip().startswith(names)]


def _ours_or_shared(pid: int, database: str) -> bool:
    """A backend of our database, or a PostgreSQL process serving no client (postmaster, WAL writer,
    checkpointer ...); not the backends of other databases, such as a test run's."""
    cmd = _read(f"/proc/{pid}/cmdline")
    return database in cmd or not ("(" in cmd or "[local]" in cmd)


def _machine_busy() -> float:
    """CPU seconds all cores have been busy since boot (everything but idle and iowait)."""
    ticks = [int(x) for x in _read("/proc/stat").split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK


def cpu_snapshot(server_pid: int | None, database: str) -> dict[str, float]:
    """CPU seconds so far of this process (the client), the server, PostgreSQL (our backends and its
    shared processes), Redis, and the rest of the machine (kernel, other programs, and PostgreSQL
    backends that have exited: a churning pool's connections end up here); and, of the server's,
    what its threads besides the event loop's used (`server_threads`)."""
    snap = {"client": time.process_time(),
            "server": _cpu_of(server_pid) if server_pid else 0.0,
            "postgres": sum(_cpu_of(p) for p in _pids_named("postgres") if _ours_or_shared(p, database)),
            "redis": sum(map(_cpu_of, _pids_named("redis-server", "valkey-server")))}
    snap["other"] = _machine_busy() - sum(snap.values())
    # Part of "server": its threads but the first (the event loop's), such as the API's after-commit sends.
    snap["server_threads"] = snap["server"] - _cpu_of(server_pid, server_pid) if server_pid else 0.0
    return snap


# ---------------------------------------------------------------- load


@dataclass(frozen=True)
class Load:
    concurrency: int
    warmup: float
    seconds: float
    database: str  # whose PostgreSQL backends count as ours


@dataclass
class Run:
    kind: str
    label: str
    unit: str  # "req/s", "leads/s", "rows/s"
    items: int = 0  # requests or leads completed inside the window
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)  # every HTTP response, in the window or not
    latencies: list[float] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)  # share of one core, inside the window
    acknowledged: int = 0  # leads answered as stored (202 / "accepted" / INSERT done), window or not
    stored: int | None = None  # rows in `lead` after the run
    sessions: int | None = None  # PostgreSQL connections opened during the run
    connections: int = 0  # the load's concurrency: a steady pool opens about this many sessions
    late: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    @property
    def churned(self) -> bool:
        """Far more PostgreSQL connections opened than the load needs: a pool closing and reopening them."""
        return bool(self.sessions and self.sessions > 2 * self.connections)

    def cpu_us(self, who: str) -> float:
        """CPU µs that `who` spent per request, lead or row."""
        return self.cpu.get(who, 0.0) * 1e6 / self.rate if self.rate else 0.0

    def error(self, message: str) -> None:
        if len(self.errors) < 5:
            self.errors.append(message)


class _Window:
    """What completes while `open`; the load runs before (warm-up) and stops once `stopping`."""

    def __init__(self) -> None:
        self.open = self.stopping = False
        self.items = 0
        self.latencies: list[float] = []

    def completed(self, n: int, started: float) -> None:
        if self.open:
            self.items += n
            self.latencies.append(time.perf_counter() - started)


async def _measure(run: Run, window: _Window, load: Load, server_pid: int | None) -> None:
    await asyncio.sleep(load.warmup)
    cpu0, t0 = cpu_snapshot(server_pid, load.database), time.perf_counter()
    window.open = True
    await asyncio.sleep(load.seconds)
    window.open = False
    t1, cpu1 = time.perf_counter(), cpu_snapshot(server_pid, load.database)
    window.stopping = True
    run.seconds, run.items, run.latencies = t1 - t0, window.items, window.latencies
    run.cpu = {k: max(0.0, cpu1[k] - cpu0[k]) / (t1 - t0) for k in cpu0}


class _Client(asyncio.Protocol):
    """One keep-alive connection with one request in flight: send, read the whole answer, send."""

    def __init__(self, feed: Feed, window: _Window, run: Run, expect: int, count: Callable[[bytes], int],
                 done: asyncio.Future):
        self.feed, self.window, self.run, self.expect, self.count, self.done = feed, window, run, expect, count, done
        self.buf = bytearray()
        self.need = -1  # length of the current response (head + body); -1 while its head is incomplete
        self.head_end = self.status = 0
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self._send()

    def _send(self) -> None:
        if self.window.stopping:
            self.transport.close()
            return
        self.sent_at = time.perf_counter()
        self.transport.write(self.feed.next())

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            if self.need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(buf[:end]).lower()
                self.status = int(head[9:12])
                i = head.find(b"\r\ncontent-length:") + 17
                if i < 17:
                    self.run.error(f"response without content-length: {head[:200]!r}")
                    self.transport.close()
                    return
                j = head.find(b"\r\n", i)
                self.head_end, self.need = end + 4, end + 4 + int(head[i:j if j > 0 else None])
            if len(buf) < self.need:
                return
            body = bytes(buf[self.head_end:self.need])
            del buf[:self.need]
            self.need = -1
            self._answered(body)
            if self.window.stopping:
                self.transport.close()
                return
            self._send()

    def _answered(self, body: bytes) -> None:
        run = self.run
        run.statuses[self.status] += 1
        if self.status != self.expect:
            run.error(f"{self.status}: {body[:300]!r}")
            return
        n = self.count(body)
        run.acknowledged += n
        self.window.completed(n, self.sent_at)

    def connection_lost(self, exc) -> None:
        if not self.window.stopping:
            self.run.error(f"connection lost mid-run: {exc!r}")
        if not self.done.done():
            self.done.set_result(None)


async def http_load(run: Run, server: Server, feed: Feed, load: Load, expect: int,
                    count: Callable[[bytes], int]) -> Run:
    """`load.concurrency` connections send `feed` to `server` back to back; `count(body)` of an
    answer with status `expect` says how many leads it stored."""
    loop = asyncio.get_running_loop()
    window = _Window()
    done = [loop.create_future() for _ in range(load.concurrency)]
    transports = []
    try:
        for d in done:
            transport, _ = await loop.create_connection(
                lambda d=d: _Client(feed, window, run, expect, count, d), HOST, server.port)
            transports.append(transport)
        await _measure(run, window, load, server.pid)
        _, pending = await asyncio.wait(done, timeout=60)  # requests in flight finish; nothing new starts
        if pending:
            run.error(f"{len(pending)} connections still busy 60 s after the window")
    finally:  # Ctrl-C included
        window.stopping = True
        for t in transports:
            t.close()
    run.late = feed.late
    return run


async def pool_load(run: Run, dsn: str, feed: Feed, load: Load,
                    op: Callable[[asyncpg.Connection, object], Awaitable[int]]) -> Run:
    """The same loop without HTTP: `load.concurrency` asyncpg connections, each running
    `op(conn, payload)` (→ rows stored) back to back."""
    window = _Window()
    pool = await asyncpg.create_pool(dsn, min_size=load.concurrency, max_size=load.concurrency)

    async def worker() -> None:
        async with pool.acquire() as conn:
            while not window.stopping:
                started = time.perf_counter()
                n = await op(conn, feed.next())
                run.acknowledged += n
                window.completed(n, started)

    workers = [asyncio.create_task(worker()) for _ in range(load.concurrency)]
    finished = False
    try:
        await _measure(run, window, load, None)
        await asyncio.gather(*workers)
        finished = True
    finally:  # Ctrl-C included: stop the workers, or closing the pool would wait for them forever
        window.stopping = True
        if finished:
            await pool.close()
        else:
            for w in workers:
                w.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            pool.terminate()
    run.late = feed.late
    return run


# ---------------------------------------------------------------- what each kind of run does


def _one(_body: bytes) -> int:
    return 1


def _accepted(body: bytes) -> int:
    return body.count(b'"status":"accepted"')


async def _raw_one(conn, row: tuple) -> int:
    await conn.execute(RAW_INSERT_ONE, *row)
    return 1


def _repo_one(leads: Leads):
    async def op(conn, row: tuple) -> int:
        await conn.fetchrow(INSERT_ONE, *row, ACTOR)
        return 1
    return op


def _raw_many(size: int):
    async def op(conn, columns: list[list]) -> int:
        await conn.execute(RAW_INSERT_MANY, *columns)
        return size
    return op


def _repo_many(size: int):
    async def op(conn, columns: list[list]) -> int:
        await conn.fetch(INSERT_MANY, *columns, [ACTOR] * size)
        return size
    return op


KINDS = {  # kind: (label in the tables, unit, first guess of the rate for sizing its feed)
    "echo": ("bare FastAPI echo, POST /echo", "req/s", 0),
    "single": ("quanzu POST /api/v1/leads", "req/s", 5_000),
    "raw_one": ("raw asyncpg INSERT, 1 row per statement", "rows/s", 10_000),
    "repo_one": ("repository INSERT_ONE via asyncpg", "rows/s", 10_000),
    "batch": ("quanzu POST /api/v1/leads/batch", "leads/s", 20_000),
    "raw_many": ("raw asyncpg INSERT … unnest, 1 statement per batch", "rows/s", 60_000),
    "repo_many": ("repository INSERT_MANY via asyncpg", "rows/s", 60_000),
}


@dataclass
class Bench:
    args: argparse.Namespace
    backing: Backing
    leads: Leads
    api_key: str
    quanzu: Server
    echo: Server
    runs: dict[str, list[Run]] = field(default_factory=dict)

    def _feed(self, kind: str, build: Callable[[], object], per_payload: int = 1) -> Feed:
        """Enough payloads for 2× the kind's last rate (its first guess before the first run)."""
        a = self.args
        last = self.runs.get(kind)
        rate = last[-1].rate if last else KINDS[kind][2]
        return Feed(build, max(64, int(2 * rate * (a.warmup + a.seconds) / per_payload)))

    async def _run(self, kind: str, rep: int, load: Load, go: Callable[[Run], Awaitable[Run]],
                   writes: bool = True) -> None:
        label, unit, _ = KINDS[kind]
        run = Run(kind, f"{label} #{rep}", unit, connections=load.concurrency)
        if writes:
            self.backing.reset()
            sessions = self.backing.sessions()
        gc.collect()
        gc.freeze()  # the payloads built for this run stay out of the client's collections while it measures
        try:
            await go(run)
        finally:
            gc.unfreeze()
        if writes:
            await asyncio.sleep(0.3)  # answers are in; let PostgreSQL's statistics catch up
            run.stored = self.backing.leads_stored()
            after = self.backing.sessions()
            run.sessions = after - sessions if None not in (sessions, after) else None
        self.runs.setdefault(kind, []).append(run)
        cpu = "  ".join(f"{k} {v * 100:.0f}%" for k, v in run.cpu.items() if v >= 0.005)
        opened = f"  PostgreSQL sessions opened: {run.sessions:,}" if run.churned else ""
        print(f"  {run.label:<58} {run.rate:>9,.0f} {run.unit:<7}  cpu: {cpu}{opened}", flush=True)
        for e in run.errors:
            print(f"    ! {e}", flush=True)

    async def single(self, rep: int) -> None:
        a, lq, echo, quanzu = self.args, self.leads, self.echo, self.quanzu
        load = Load(a.concurrency, a.warmup, a.seconds, self.backing.database)
        # the echo gets the same bodies and headers: what it costs to receive and answer them
        bodies = Feed(lambda: http_request(echo.port, "/echo", self.api_key, lq.body()), 4096, cycle=True)
        await self._run("echo", rep, load, lambda run: http_load(run, echo, bodies, load, 200, _one), writes=False)
        feed = self._feed("single", lambda: http_request(quanzu.port, "/api/v1/leads", self.api_key, lq.body()))
        await self._run("single", rep, load, lambda run: http_load(run, quanzu, feed, load, 202, _one))
        if a.context:
            for kind, op in (("raw_one", _raw_one), ("repo_one", _repo_one(lq))):
                go = partial(pool_load, dsn=self.backing.database_url, feed=self._feed(kind, lq.next_row), load=load,
                             op=op)
                await self._run(kind, rep, load, go)

    async def batch(self, rep: int) -> None:
        a, lq, quanzu, size = self.args, self.leads, self.quanzu, self.args.batch
        load = Load(a.batch_concurrency, a.warmup, a.seconds, self.backing.database)
        feed = self._feed("batch", lambda: http_request(quanzu.port, "/api/v1/leads/batch", self.api_key,
                                                        lq.batch_body(size)), size)
        await self._run("batch", rep, load, lambda run: http_load(run, quanzu, feed, load, 200, _accepted))
        kinds = [("raw_many", _raw_many(size))] + ([("repo_many", _repo_many(size))] if a.context else [])
        for kind, op in kinds:
            feed = self._feed(kind, partial(lq.batch_columns, size), size)
            await self._run(kind, rep, load, partial(pool_load, dsn=self.backing.database_url, feed=feed, load=load,
                                                     op=op))

    async def all(self) -> None:
        a = self.args
        if a.only in ("all", "single"):
            print(f"\nsingle ingest: {a.concurrency} connections, {a.seconds:g} s measured after {a.warmup:g} s "
                  f"warm-up, {a.repeat} rounds; {self.leads.lane()}", flush=True)
            for rep in range(1, a.repeat + 1):
                await self.single(rep)
        if a.only in ("all", "batch"):
            print(f"\nbatch ingest: {a.batch} leads per request or statement, {a.batch_concurrency} connections, "
                  f"{a.repeat} rounds", flush=True)
            for rep in range(1, a.repeat + 1):
                await self.batch(rep)


# ---------------------------------------------------------------- report


def _median(runs: list[Run]) -> float:
    return statistics.median(r.rate for r in runs)


def _ms(latencies: list[float], q: float) -> str:
    if not latencies:
        return "-"
    s = sorted(latencies)
    return f"{s[min(len(s) - 1, int(q * len(s)))] * 1000:.1f}"


def _ratio(runs: dict[str, list[Run]], a: str, b: str) -> float | None:
    return _median(runs[a]) / _median(runs[b]) if runs.get(a) and runs.get(b) and _median(runs[b]) else None


def report(bench: Bench, machine: dict) -> None:
    runs = bench.runs
    print("\n## Results\n")
    for k, v in machine.items():
        print(f"- {k}: {v}")
    print("\n| run | median | each run | p50 ms | p99 ms | CPU µs per item: app (its threads besides the "
          "event loop's) / PostgreSQL | "
          "CPU % of a core: client / server / PostgreSQL / other |")
    print("|---|---:|---|---:|---:|---:|---|")
    for kind, (label, unit, _) in KINDS.items():
        rs = runs.get(kind)
        if not rs:
            continue
        latencies = [x for r in rs for x in r.latencies]
        app = "server" if kind in ("echo", "single", "batch") else "client"  # without HTTP the bench is the app
        app_us, pg_us = (statistics.median(r.cpu_us(who) for r in rs) for who in (app, "postgres"))
        threads = f" ({statistics.median(r.cpu_us('server_threads') for r in rs):,.0f})" if app == "server" else ""
        us = f"{app_us:,.0f}{threads} / {pg_us:,.0f}"
        share = " / ".join(f"{statistics.median(r.cpu.get(k, 0.0) for r in rs) * 100:.0f}"
                           for k in ("client", "server", "postgres", "other"))
        each = ", ".join(f"{r.rate:,.0f}" for r in rs)
        print(f"| {label} | {_median(rs):,.0f} {unit} | {each} | {_ms(latencies, 0.5)} | {_ms(latencies, 0.99)} "
              f"| {us} | {share} |")

    print("\n| ratio (of medians) | measured | goal | |")
    print("|---|---:|---:|---|")
    for name, a, b, goal in (("single / echo", "single", "echo", GOAL_SINGLE),
                             ("batch / raw INSERT", "batch", "raw_many", GOAL_BATCH)):
        value = _ratio(runs, a, b)
        if value is not None:
            print(f"| {name} | {value:.3f} | ≥ {goal:.2f} | {'met' if value >= goal else '**not met**'} |")
    for name, a, b in (("single / raw 1-row INSERT", "single", "raw_one"),
                       ("single / repository INSERT_ONE", "single", "repo_one"),
                       ("batch / repository INSERT_MANY", "batch", "repo_many"),
                       ("repository INSERT_MANY / raw INSERT", "repo_many", "raw_many")):
        value = _ratio(runs, a, b)
        if value is not None:
            print(f"| {name} (context) | {value:.3f} | | |")

    notes = []
    for kind, rs in runs.items():
        for r in rs:
            odd = {s: n for s, n in r.statuses.items() if s not in (200, 202)}
            if odd:
                notes.append(f"{r.label}: unexpected statuses {odd}")
            if kind == "single" and r.statuses.get(200):
                notes.append(f"{r.label}: {r.statuses[200]} answered as duplicates (200)")
            if r.stored is not None and r.stored != r.acknowledged:
                notes.append(f"{r.label}: {r.acknowledged:,} acknowledged but {r.stored:,} stored")
            if r.late:
                notes.append(f"{r.label}: {r.late:,} payloads built during the run (estimate too low)")
            if r.churned:
                notes.append(f"{r.label}: {r.sessions:,} PostgreSQL connections were opened during the run (a pool "
                             f"closing and reopening connections under load); the CPU of those backends is "
                             f"counted under 'other', as they had exited")
            elif r.cpu.get("other", 0.0) > NOISY:
                notes.append(f"{r.label}: the rest of the machine used {r.cpu['other'] * 100:.0f}% of a core "
                             f"meanwhile; this run is noisy")
    if notes:
        print("\nNotes:")
        for n in notes:
            print(f"- {n}")


def machine_info(backing: Backing) -> dict:
    info = backing.info()
    pg = info["pg"]
    model = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                  if line.startswith("model name")), platform.processor() or "?")
    versions = ", ".join(f"{p} {importlib.metadata.version(p)}"
                         for p in ("fastapi", "starlette", "uvicorn", "uvloop", "httptools", "asyncpg"))
    return {
        "date": date.today().isoformat(),
        "machine": f"{os.cpu_count()} cores ({model}), {platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}; {versions}",
        "postgresql": f"{pg['server_version'].split()[0]} ({backing.pg_origin}), fsync={pg['fsync']}, "
                      f"synchronous_commit={pg['synchronous_commit']}, shared_buffers={pg['shared_buffers']}",
        "redis": f"{info['redis']} ({backing.redis_origin}), db {backing.redis_db}",
        "servers": "one uvicorn process each, 1 worker, uvloop + httptools, no access log; client, servers and "
                   "PostgreSQL on the same machine",
    }


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seconds", type=float, default=5.0, help="measured seconds per run (default 5)")
    p.add_argument("--warmup", type=float, default=1.5, help="unmeasured seconds before each run (default 1.5)")
    p.add_argument("--concurrency", type=int, default=16, help="connections for single ingest and echo (default 16)")
    p.add_argument("--batch", type=int, default=1000, help="leads per batch request and rows per INSERT (default 1000)")
    p.add_argument("--batch-concurrency", type=int, default=4, help="connections for batch ingest (default 4)")
    p.add_argument("--repeat", type=int, default=3, help="rounds of each kind, interleaved (default 3)")
    p.add_argument("--redis-db", type=int, default=BENCH_REDIS_DB,
                   help=f"Redis db to use and flush (default {BENCH_REDIS_DB})")
    p.add_argument("--only", choices=("all", "single", "batch"), default="all")
    p.add_argument("--no-context", dest="context", action="store_false",
                   help="skip the context runs (1-row INSERT, the repository's SQL alone)")
    p.add_argument("--app", metavar="MODULE:ATTR",
                   help="serve this ASGI app with uvicorn in place of `quanzu serve`, to try a change\n"
                        "to the service without editing it (PYTHONPATH reaches the server)")
    return p.parse_args(argv)


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # unwinds like Ctrl-C, through the cleanup below
    backing = Backing(redis_db=args.redis_db)
    servers: list[Server] = []
    try:
        backing.pick()
        backing.create_database()
        env = {**os.environ, "DATABASE_URL": backing.database_url, "REDIS_URL": backing.redis_url,
               "LOG_LEVEL": "WARNING", "SECRET_KEY": os.environ.get("SECRET_KEY") or uuid.uuid4().hex * 2}
        api_key = backing.create_api_key(env)
        leads = Leads()
        flags = ["--workers", "1", "--no-access-log", "--log-level", "warning"]
        servers.append(Server("echo", [sys.executable, "-m", "uvicorn", "bench.echo_app:app", "--host", HOST, *flags],
                              env, ("POST", "/echo")))
        # `quanzu serve` is uvicorn.run(workers=1, access_log=False); LOG_LEVEL sets its log level.
        quanzu = ([sys.executable, "-m", "uvicorn", args.app, "--host", HOST, *flags] if args.app else
                  [sys.executable, "-m", "service.cli", "serve", "--host", HOST])
        servers.append(Server("quanzu", quanzu, env, ("GET", "/healthz")))
        machine = machine_info(backing)
        print(f"PostgreSQL {backing.pg_origin}, Redis {backing.redis_origin}; database {backing.database}; "
              f"quanzu: {args.app or 'quanzu serve'}")
        bench = Bench(args, backing, leads, api_key, quanzu=servers[1], echo=servers[0])
        uvloop.run(bench.all())
        report(bench, machine)
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the servers and dropping the database", file=sys.stderr)
        return 130
    finally:
        for s in reversed(servers):
            s.stop()
        backing.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
