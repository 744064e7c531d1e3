"""Field dispatch push latency, idle-socket memory and nearest-squad choice, each against a floor.

    python bench/push_latency.py [--clients 1000] [--leads 100] [--rounds 5] [--background 200]
                                 [--idle 10000] [--linger 0.05] [--redis-db 13] [--only all|push|idle|nearest]
                                 [--path real|floor]

1. Push latency: one quanzu API process (`quanzu serve`: websockets-sansio, no per-message
   deflate), one `quanzu worker` and one `quanzu worker --urgent`; `--clients` squad-member sockets
   connected (the members of every imported squad, round robin) for all rounds. Each of `--rounds`
   rounds: the floor, then `--leads` P0 leads pushed one at a time (150 ms apart) on a quiet queue,
   then `--leads` more while `--background` P3 leads a second are pushed (batches, ten a second).
   Measured: from just before `POST /api/v1/leads` to the `offer` on the first socket of the squad
   it went to (and to every member socket); where the time goes, from the rows' own timestamps (the
   medians, and the round's slowest lead hop by hop); how much of the background the ordinary
   worker had worked by the end of the round. The first member to get an offer accepts it, as a
   squad does: unanswered, every offer expired after the policy's 60 s and came back as a burst of
   offers to the next squads, which stalled later rounds by 100-400 ms. Between rounds the squads
   arrive and finish what they took: matching counts each squad's open assignments for every offer,
   and 1,400 accepted and never finished slowed that read (1.0 ms of PostgreSQL). Floor, in the
   same round: a durable 1-row INSERT (its own commit), a Redis PUBLISH heard by another process
   that writes it to this bench's websocket (bench/ws_echo.py with a channel) — what any path from a
   committed offer to a phone must do. Also printed: a websockets echo round trip, a PostgreSQL
   `SELECT 1`, and the rq hop (enqueue → a waiting worker starts the job). Goal (issue 25): p50 ≤ 10 ms
   and p99 ≤ 25 ms, quiet and with the background; medians over the rounds. `--path floor` runs the
   same rounds through the same API, rq and fan-out with the workers' P0 transaction cut to the least
   any worker path must do (bench/floor_worker.py: lock, place, the squad's logins, mark, commit,
   push; no person, tier, ladder or choice): the floor of the design, to run beside the real path.
2. Memory per idle connection: `--idle` more authenticated sockets (up to what `ulimit -n`
   allows, raised to the hard limit), the API process's RSS before and after (bench/sockets.py
   measures this at 20,000, with a reconnect storm and the board's fan-out).
3. Nearest squad at 10,000 squads: geo.nearest.PointIndex (STRtree + haversine) against a numpy
   brute-force haversine scan with argpartition, the same 2,000 queries. Goal: faster.

PostgreSQL and Redis as bench/ingest.py finds them (a fresh database, dropped at the end; the
Redis db of `--redis-db`, flushed). Speed is measured, never asserted: the exit code is 0.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (Backing, Server: the same servers and database handling)

from geo.distance import EARTH_RADIUS_M  # noqa: E402
from geo.nearest import PointIndex  # noqa: E402

# The API as deployed: `quanzu serve` (its uvicorn flags, service/cli/run.py: websockets-sansio, no
# per-message deflate, no access log); LOG_LEVEL in the environment sets its log level. bench/sockets.py
# and bench/city.py start it the same way.
SERVE = [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1"]


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))] if xs else float("nan")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---------------------------------------------------------------- setup


def setup_district(backing: ingest.Backing, clients: int, idle: int = 0) -> tuple[list[tuple[str, str]], list[dict]]:
    """Import the shared district, put every squad on duty at home, make `clients` member users.
    → ([(username, team)], P0-ready places [{lon, lat, team}])."""
    from sqlalchemy import text

    from dispatch.district import import_district
    from geo.district import load_district_dir
    from service.core.auth import hash_password
    from service.core.db import make_sync_engine, sync_session
    from service.core.settings import find_sample_district

    district = find_sample_district() or ROOT.parent / "shared" / "data" / "district"
    engine = make_sync_engine(backing.database_url, 1)
    with sync_session(engine) as s:
        import_district(s, load_district_dir(district))
        s.commit()
        s.execute(text("UPDATE team SET status = 'on_duty', last_lon = home_lon, last_lat = home_lat, "
                       "last_at = now() + interval '1 day'"))  # fresh for the whole run
        teams = [r[0] for r in s.execute(text("SELECT code FROM team ORDER BY code"))]
        hashed = hash_password("bench")
        # all police: the benches sign their tokens as police, and a token must match its user's row (issue 24)
        users = [(f"bench-{i}", teams[i % len(teams)], "police") for i in range(clients)]
        s.execute(text("INSERT INTO app_user (username, password_hash, role, team_code, active) "
                       "SELECT u, :h, r, t, true FROM unnest(CAST(:u AS text[]), CAST(:t AS text[]), "
                       "CAST(:r AS text[])) AS x(u, t, r)"),
                  {"h": hashed, "u": [u for u, _t, _r in users], "t": [t for _u, t, _r in users],
                   "r": [r for _u, _t, r in users]})
        # the idle sockets' accounts: a token speaks only for a user that exists (issue 24)
        s.execute(text("INSERT INTO app_user (username, password_hash, role, active) "
                       "SELECT 'idle-' || i, :h, 'operator', true FROM generate_series(0, :n - 1) AS i"),
                  {"h": hashed, "n": idle})
        s.commit()
    engine.dispose()
    places = []
    with (district / "leads_truth.jsonl").open(encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            if t["verdict"] == "accept" and t["in_jurisdiction"] and t.get("beat_code"):
                places.append({"lon": t["true_lon"], "lat": t["true_lat"], "team": f"T{t['beat_code']}"})
    return [(u, t) for u, t, _r in users], places


def p0(place: dict, n: int) -> dict:
    return {"source": "bank_fund_monitor", "source_id": f"BENCH-{n}-{time.time_ns()}",
            "pushed_at": "2026-11-01T09:30:00+08:00", "warning_type": "fund_transfer", "fraud_type": "fake_loan",
            "risk_level": 1, "subject": {"phone": f"139{n:08d}", "name": "压测", "residency": "resident"},
            "amount_cny": 1000, "location": {"lon": place["lon"], "lat": place["lat"], "crs": "wgs84",
                                             "accuracy_m": 10, "kind": "gps"}}


# ---------------------------------------------------------------- 1. push latency


def p3(place: dict, n: int) -> dict:
    """A background lead: tiered P3 (an SMS, no visit), so it makes no offer of its own."""
    return {"source": "provincial_center", "source_id": f"BG-{n}-{time.time_ns()}",
            "pushed_at": "2026-11-01T09:30:00+08:00", "warning_type": "fraud_app", "fraud_type": "order_brushing",
            "risk_level": 3, "subject": {"phone": f"137{n:08d}", "residency": "resident"},
            "location": {"lon": place["lon"], "lat": place["lat"], "crs": "wgs84", "accuracy_m": 10, "kind": "gps"}}


class Phones:
    """`--clients` squad members' sockets, connected once for all rounds; first offer per lead."""

    def __init__(self, api: ingest.Server, users: list[tuple[str, str]], secret: str):
        self.api, self.users, self.secret = api, users, secret
        self.got: dict[int, list[float]] = {}
        self.got_wall: dict[int, float] = {}  # first offer per lead, wall clock (beside the rows' times)
        self.socks: list = []
        self.taken: list = []  # (socket, assignment id) accepted and not finished yet
        self.finishing: set[int] = set()  # the assignments `finish` is finishing, and the API's answers
        self.answers = {"ok": 0, "refused": []}

    async def finish(self) -> dict:
        """Between rounds the squads go, arrive and finish what they took (见面劝阻 done), as squads
        do: open assignments do not pile up round after round (matching counts them for every offer,
        so its read would slow with a backlog no district has). → visits finished, and how the API
        answered the arrives and completes."""
        taken, self.taken = self.taken, []
        self.finishing, self.answers = {aid for _ws, aid in taken}, {"ok": 0, "refused": []}
        for kind, extra in (("arrive", {}), ("complete", {"outcome": "dissuaded", "met_in_person": True})):
            for ws, aid in taken:
                await ws.send(orjson.dumps({"type": kind, "id": aid, "assignment_id": aid, **extra}).decode())
            await asyncio.sleep(3)  # the API works them through before the next step and the next round
        return {"visits": len(taken), "ok": self.answers["ok"], "refused": self.answers["refused"][:3]}

    async def connect(self) -> float:
        from websockets.asyncio.client import connect

        from service.core.auth import create_access_token

        url = f"ws://127.0.0.1:{self.api.port}/api/v1/ws"

        async def member(username: str, team: str):
            token = create_access_token(username, "police", team, self.secret, 120)
            ws = await connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None,
                               open_timeout=60, ping_interval=None)

            async def read():
                async for text in ws:
                    now = time.perf_counter()
                    m = orjson.loads(text)
                    if m["type"] == "result" and m.get("id") in self.finishing:  # an arrive or a complete
                        if m.get("ok"):
                            self.answers["ok"] += 1
                        else:
                            self.answers["refused"].append(m.get("error"))
                    if m["type"] == "offer":
                        lead_id = m["data"]["lead"]["id"]
                        first = lead_id not in self.got
                        self.got.setdefault(lead_id, []).append(now)
                        self.got_wall.setdefault(lead_id, time.time())
                        await ws.send(orjson.dumps({"type": "ack", "seq": m["seq"]}).decode())
                        if first:  # the squad takes it, as squads do: no offer left to expire and come back
                            await ws.send(orjson.dumps({"type": "accept", "id": lead_id,
                                                        "assignment_id": m["data"]["assignment_id"]}).decode())
                            if m["data"]["assignment_id"]:  # (none with --path floor)
                                self.taken.append((ws, m["data"]["assignment_id"]))
            return ws, asyncio.create_task(read())

        t = time.perf_counter()
        for i in range(0, len(self.users), 100):  # connect in waves: the server accepts on one core
            self.socks += await asyncio.gather(*(member(u, team) for u, team in self.users[i:i + 100]))
        await asyncio.sleep(2)
        return time.perf_counter() - t

    async def close(self) -> None:
        for ws, task in self.socks:
            task.cancel()
            await ws.close()


async def push_round(phones: Phones, api_key: str, places: list[dict], n_leads: int, seed: int,
                     background: float = 0.0, first: int | None = None) -> dict:
    """`n_leads` P0 leads one at a time (latency, not throughput), 150 ms apart; with `background`,
    that many P3 leads a second pushed meanwhile (batches of a tenth of it, ten a second)."""
    sent: dict[int, float] = {}
    sent_wall: dict[int, float] = {}
    rng = random.Random(seed)
    bg = {"pushed": 0, "batches": 0, "first_id": None, "last_id": None}
    stop = asyncio.Event()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{phones.api.port}", headers={"X-API-Key": api_key},
                                 timeout=30) as http:
        async def pusher():
            per = max(1, int(background / 10))
            n = 0
            nxt = time.perf_counter()
            while not stop.is_set():
                leads = [p3(rng.choice(places), seed * 10_000_000 + n + i) for i in range(per)]
                n += per
                r = await http.post("/api/v1/leads/batch", json={"leads": leads})
                ids = [x["id"] for x in r.json()["results"] if x.get("id")]
                bg["pushed"] += len(ids)
                bg["batches"] += 1
                if ids:
                    bg["first_id"] = bg["first_id"] or min(ids)
                    bg["last_id"] = max(ids)
                nxt += 0.1
                await asyncio.sleep(max(0.0, nxt - time.perf_counter()))

        task = asyncio.create_task(pusher()) if background else None
        if task is not None:
            await asyncio.sleep(2)  # the background is flowing before the first P0
        t_start = time.perf_counter()
        for n in range(n_leads):
            body = p0(rng.choice(places), (seed * 10_000_000 if first is None else first) + n)
            t0, w0 = time.perf_counter(), time.time()
            r = await http.post("/api/v1/leads", json=body)
            sent[r.json()["id"]] = t0
            sent_wall[r.json()["id"]] = w0
            await asyncio.sleep(0.15)
        elapsed = time.perf_counter() - t_start
        await asyncio.sleep(3)
        stop.set()
        if task is not None:
            await task
    got = phones.got
    first = [(min(got[i]) - t0) * 1000 for i, t0 in sent.items() if i in got]
    every = [(x - t0) * 1000 for i, t0 in sent.items() for x in got.get(i, ())]
    out = {"leads": len(sent), "offered": len(first), "first_p50": pct(first, 50), "first_p99": pct(first, 99),
           "every_p50": pct(every, 50), "every_p99": pct(every, 99), "receipts": len(every),
           "_sent_wall": sent_wall, "_got_wall": phones.got_wall}
    if background:
        out["background"] = {"asked_per_s": background, "pushed": bg["pushed"],
                             "pushed_per_s": round(bg["pushed"] / (elapsed + 5), 1),
                             "_ids": (bg["first_id"], bg["last_id"])}
    return out


def background_done(database_url: str, ids: tuple[int | None, int | None]) -> dict:
    """How many of the background's leads the ordinary workers had placed by the end of the round."""
    import psycopg

    if ids[0] is None:
        return {}
    with psycopg.connect(database_url) as conn:
        total, worked = conn.execute("SELECT count(*), count(*) FILTER (WHERE status <> 'received') FROM lead "
                                     "WHERE id BETWEEN %s AND %s AND source = 'provincial_center'", ids).fetchone()
    return {"worked": worked, "of": total}


FLOOR_HOPS = ("push_to_row", "row_to_offer_row", "offer_row_to_socket")


def hops(database_url: str, sent_wall: dict[int, float], got_wall: dict[int, float]) -> tuple[dict, dict]:
    """Where the time goes, lead by lead, from the rows' own times (wall clock, one machine): the
    push until the lead row, until the worker placed it (enqueue, rq, the worker's transaction),
    placing and tiering, until the offer row (ladder rows, commit, the visit offered in the same
    worker), until the first member's socket had it (commit, publish, fan-out). With `--path floor`
    (no placing, tiering or assignment row) the worker's one event stands for the offer row. → (the
    medians, the round's slowest lead hop by hop: where a tail comes from), in ms."""
    import psycopg

    ids = [i for i in sent_wall if i in got_wall]
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("""
            SELECT l.id, extract(epoch FROM l.received_at),
                   (SELECT extract(epoch FROM min(e.at)) FROM lead_event e WHERE e.lead_id = l.id AND e.kind = 'placed'),
                   (SELECT extract(epoch FROM min(e.at)) FROM lead_event e WHERE e.lead_id = l.id AND e.kind = 'tiered'),
                   coalesce((SELECT extract(epoch FROM min(a.offered_at)) FROM assignment a WHERE a.lead_id = l.id),
                            (SELECT extract(epoch FROM min(e.at)) FROM lead_event e
                             WHERE e.lead_id = l.id AND e.actor = 'floor'))
            FROM lead l WHERE l.id = ANY(%s)""", (ids,)).fetchall()
    names = ("push_to_row", "row_to_placed", "placed_to_tiered", "tiered_to_offer_row", "offer_row_to_socket")
    spans: dict[str, list[float]] = {}
    slowest: tuple[float, dict] = (-1.0, {})
    for lead_id, received, placed, tiered, offered in rows:
        if None in (received, offered):
            continue
        sent, got = sent_wall[lead_id], got_wall[lead_id]
        if placed is None or tiered is None:  # the floor: push → row → offer row → socket
            marks, which = [sent, float(received), float(offered), got], FLOOR_HOPS
        else:
            marks, which = [sent, float(received), float(placed), float(tiered), float(offered), got], names
        one = {n: (b - a) * 1000 for n, a, b in zip(which, marks, marks[1:])}
        for n, ms in one.items():
            spans.setdefault(n, []).append(ms)
        slowest = max(slowest, (marks[-1] - marks[0], one), key=lambda x: x[0])
    return ({n: round(pct(v, 50), 2) for n, v in spans.items()}, {n: round(ms, 2) for n, ms in slowest[1].items()})


async def echo_floor(n: int, size: int) -> dict:
    from websockets.asyncio.client import connect

    port = ingest._free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "ws_echo.py"), str(port)], stdout=subprocess.PIPE,
                            start_new_session=True)
    try:
        proc.stdout.readline()
        payload = orjson.dumps({"type": "offer", "seq": 1, "ts": "x", "data": {"pad": "x" * size}}).decode()
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            rtts = []
            for _ in range(n):
                t0 = time.perf_counter()
                await ws.send(payload)
                await ws.recv()
                rtts.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.005)
        return {"p50": pct(rtts, 50), "p99": pct(rtts, 99), "size": len(payload)}
    finally:
        proc.terminate()
        proc.wait()


async def spine_floor(dsn: str, redis_url: str, n: int = 200, size: int = 400) -> dict:
    """The floor of push → offer, one lap at a time: a durable 1-row INSERT (committed on its own,
    fsync'd), then a Redis PUBLISH that another process hears (bench/ws_echo.py with a channel) and
    writes to this client's websocket — what any path from a committed offer to a phone must do."""
    import asyncpg
    from redis.asyncio import Redis
    from websockets.asyncio.client import connect

    port = ingest._free_port()
    channel = f"bench-floor-{secrets.token_hex(4)}"
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "ws_echo.py"), str(port), redis_url, channel],
                            stdout=subprocess.PIPE, start_new_session=True)
    conn = await asyncpg.connect(dsn)
    redis = Redis.from_url(redis_url)
    try:
        proc.stdout.readline()
        await conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, "
                           "at timestamptz NOT NULL DEFAULT now(), body text)")
        payload = orjson.dumps({"type": "offer", "seq": 1, "ts": "x", "data": {"pad": "x" * size}}).decode()
        laps = []
        async with connect(f"ws://127.0.0.1:{port}", compression=None) as ws:
            for _ in range(n):
                t0 = time.perf_counter()
                await conn.execute("INSERT INTO bench_floor (body) VALUES ($1)", payload)
                await redis.publish(channel, payload)
                await ws.recv()
                laps.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(0.005)
        return {"p50": pct(laps, 50), "p99": pct(laps, 99), "laps": n}
    finally:
        await conn.close()
        await redis.aclose()
        proc.terminate()
        proc.wait()


def rq_hop(redis_url: str, n: int = 100) -> dict:
    """What the worker path adds by design: from just before an rq enqueue to the job starting in a
    waiting worker (the project's Worker class, its own process, a queue of its own). The job is
    `time.time`: its result is when it ran."""
    from redis import Redis
    from rq import Queue

    redis = Redis.from_url(redis_url)
    name = f"bench-hop-{secrets.token_hex(4)}"
    code = ("import sys; from redis import Redis; from rq import Queue; from workers.run import Worker; "
            f"r = Redis.from_url({redis_url!r}); Worker([Queue({name!r}, connection=r)], connection=r)"
            ".work(with_scheduler=False)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        queue = Queue(name, connection=redis)
        time.sleep(2)
        enq, hop = [], []
        for _ in range(n):
            t0 = time.time()
            job = queue.enqueue("time.time", result_ttl=60)
            enq.append((time.time() - t0) * 1000)
            deadline = time.monotonic() + 10
            while (ran := job.return_value(refresh=True)) is None and time.monotonic() < deadline:
                time.sleep(0.002)
            if ran is not None:
                hop.append((ran - t0) * 1000)
            time.sleep(0.02)
        return {"enqueue_p50": pct(enq, 50), "to_job_start_p50": pct(hop, 50), "to_job_start_p99": pct(hop, 99)}
    finally:
        proc.terminate()
        proc.wait(10)


async def pg_floor(dsn: str, n: int = 300) -> dict:
    """One PostgreSQL round trip (SELECT 1) in the same run: the unit the worker path is made of."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        rtts = []
        for _ in range(n):
            t0 = time.perf_counter()
            await conn.fetchval("SELECT 1")
            rtts.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.002)
        return {"p50": pct(rtts, 50), "p99": pct(rtts, 99)}
    finally:
        await conn.close()


# ---------------------------------------------------------------- 2. idle memory


async def idle_memory(api: ingest.Server, want: int, secret: str) -> dict:
    from websockets.asyncio.client import connect

    from service.core.auth import create_access_token

    url = f"ws://127.0.0.1:{api.port}/api/v1/ws"
    await asyncio.sleep(1)
    before = rss_kib(api.pid)
    socks = []
    error = None
    for i in range(0, want, 200):
        async def one(j):
            token = create_access_token(f"idle-{j}", "operator", None, secret, 120)
            return await connect(url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None,
                                 open_timeout=120, ping_interval=None)
        try:
            socks += await asyncio.gather(*(one(j) for j in range(i, min(want, i + 200))))
        except Exception as exc:  # out of descriptors or memory: measure what we have
            error = f"{type(exc).__name__}: {exc}"
            break
    await asyncio.sleep(3)
    after = rss_kib(api.pid)
    n = len(socks)
    for ws in socks:
        await ws.close()
    return {"connections": n, "rss_before_mib": before / 1024, "rss_after_mib": after / 1024,
            "kib_per_connection": (after - before) / n if n else float("nan"), "stopped_by": error}


# ---------------------------------------------------------------- 3. nearest squad


def nearest_bench(n_squads: int = 10_000, n_queries: int = 2000, k: int = 4) -> dict:
    rng = np.random.default_rng(7)
    lon = 120.2 + rng.random(n_squads) * 0.4
    lat = 35.9 + rng.random(n_squads) * 0.3
    available = rng.random(n_squads) < 0.7  # some squads off duty or full
    q = np.column_stack([120.2 + rng.random(n_queries) * 0.4, 35.9 + rng.random(n_queries) * 0.3])

    t = time.perf_counter()
    index = PointIndex(list(zip(lon.tolist(), lat.tolist())))
    build_ms = (time.perf_counter() - t) * 1000
    ok = available.tolist()
    t = time.perf_counter()
    fast = [index.nearest(x, y, k=k, accept=ok.__getitem__) for x, y in q.tolist()]
    fast_us = (time.perf_counter() - t) / n_queries * 1e6

    rlon, rlat = np.radians(lon), np.radians(lat)
    coslat = np.cos(rlat)
    idx_avail = np.flatnonzero(available)

    def brute(x: float, y: float) -> list[int]:
        # The scan a numpy user would write: haversine to every squad, mask, argpartition.
        p1, l1 = np.radians(y), np.radians(x)
        a = np.sin((rlat - p1) * 0.5) ** 2 + np.cos(p1) * coslat * np.sin((rlon - l1) * 0.5) ** 2
        d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(1.0, a)))
        d = np.where(available, d, np.inf)
        part = np.argpartition(d, k)[:k]
        return part[np.argsort(d[part])].tolist()

    t = time.perf_counter()
    slow = [brute(x, y) for x, y in q.tolist()]
    brute_us = (time.perf_counter() - t) / n_queries * 1e6
    same = sum([i for _d, i in f] == s for f, s in zip(fast, slow))
    return {"squads": n_squads, "queries": n_queries, "k": k, "index_build_ms": build_ms, "index_us": fast_us,
            "numpy_us": brute_us, "speedup": brute_us / fast_us, "same_answer": same, "available": int(
                idx_avail.size)}


async def push_rounds(args, backing: ingest.Backing, api: ingest.Server, api_key: str,
                      users: list[tuple[str, str]], places: list[dict], secret: str) -> list[dict]:
    """`--rounds` rounds on a quiet queue, then `--rounds` with `--background` P3 leads a second pushed
    meanwhile (quiet first: the backlog the background leaves keeps the ordinary worker busy long
    after). Each round: the floor, then `--leads` P0 leads. The phones stay connected throughout."""
    phones = Phones(api, users, secret)
    connect_s = await phones.connect()
    print(f"{len(phones.socks)} squad sockets connected in {connect_s:.1f} s", flush=True)
    rounds: list[dict] = [{} for _ in range(args.rounds)]
    try:
        # Warm-up, not counted: a fresh worker's first leads load the beat index, the policy and the
        # squads' adjacency, and open their database connections (printed: the cold start's cost).
        warm = await push_round(phones, api_key, places, 10, seed=99, background=0.0, first=99_999_000)
        await phones.finish()
        print(f"warm-up (not counted): 10 P0 leads, p50 {warm['first_p50']:.1f} / max {warm['first_p99']:.1f} ms",
              flush=True)
        for kind, bg in (("quiet", 0.0), ("background", args.background)):
            for r, one in enumerate(rounds):
                floor = await spine_floor(backing.database_url, backing.redis_url)
                res = await push_round(phones, api_key, places, args.leads, seed=r * 2 + (kind == "background"),
                                       background=bg)
                sent_wall = res.pop("_sent_wall")
                res.pop("_got_wall")
                res["floor"] = floor
                res["hops_p50_ms"], res["slowest_lead_ms"] = hops(backing.database_url, sent_wall, phones.got_wall)
                if "background" in res:
                    res["background"] |= background_done(backing.database_url, res["background"].pop("_ids"))
                res["finished_after"] = await phones.finish()
                one[kind] = res
                print(f"{kind} round {r + 1}: floor p50 {floor['p50']:.2f} / p99 {floor['p99']:.2f} ms; "
                      f"P0 push → offer p50 {res['first_p50']:.1f} / p99 {res['first_p99']:.1f} ms "
                      f"({res['offered']}/{res['leads']} offered)"
                      + (f"; background {json.dumps(res['background'])}" if bg else "")
                      + f"\n  where the time goes (p50 ms): {json.dumps(res['hops_p50_ms'])}"
                      + f"\n  the slowest lead (ms): {json.dumps(res['slowest_lead_ms'])}", flush=True)
                print(f"  after the round the squads finished: {json.dumps(res['finished_after'])}", flush=True)
    finally:
        await phones.close()
    return rounds


def summarize(out: dict) -> None:
    """Medians over the rounds, beside the floor and the goal."""
    import statistics

    rounds = out["rounds"]
    med = {"floor_p50": statistics.median(r[k]["floor"]["p50"] for r in rounds for k in ("quiet", "background")),
           "floor_p99": statistics.median(r[k]["floor"]["p99"] for r in rounds for k in ("quiet", "background"))}
    for kind in ("quiet", "background"):
        for q in ("first_p50", "first_p99"):
            med[f"{kind}_{q}"] = statistics.median(r[kind][q] for r in rounds)
    out["medians"] = med
    path = " (--path floor: the workers' P0 transaction cut to the least)" if out.get("path") == "floor" else ""
    print(f"\nmedians of {len(rounds)} rounds{path}: floor (commit + publish + socket) p50 {med['floor_p50']:.2f} / "
          f"p99 {med['floor_p99']:.2f} ms; P0 push → offer quiet p50 {med['quiet_first_p50']:.1f} / "
          f"p99 {med['quiet_first_p99']:.1f} ms; with background p50 {med['background_first_p50']:.1f} / "
          f"p99 {med['background_first_p99']:.1f} ms (goal p50 ≤ 10, p99 ≤ 25)", flush=True)


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--leads", type=int, default=100, help="P0 leads per phase of a round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--background", type=float, default=200, help="P3 leads a second in the background phase")
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--linger", type=float, default=0.05, help="ENQUEUE_LINGER_SECONDS of the API")
    ap.add_argument("--redis-db", type=int, default=13)
    ap.add_argument("--only", choices=("all", "push", "idle", "nearest"), default="all")
    ap.add_argument("--path", choices=("real", "floor"), default="real",
                    help="floor: the workers' P0 transaction cut to the least any worker path must do "
                         "(bench/floor_worker.py), the rest of the path as it is")
    args = ap.parse_args(argv)
    out: dict = {"path": args.path}
    if args.only in ("all", "nearest"):
        out["nearest"] = nearest_bench()
        print("nearest:", json.dumps(out["nearest"], indent=1), flush=True)
        if args.only == "nearest":
            return 0
    hard = raise_nofile()
    ingest.BENCH_REDIS_DB = args.redis_db
    backing = ingest.Backing()
    api = worker = urgent = None
    try:
        backing.pick()
        backing.create_database()
        env = {**os.environ, "DATABASE_URL": backing.database_url, "REDIS_URL": backing.redis_url,
               "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48),
               "LOG_LEVEL": "WARNING", "ENQUEUE_LINGER_SECONDS": str(args.linger),
               "SQUAD_WORKLOAD_LIMIT": "1000000", "WS_PING_SECONDS": "3600", "INTAKE_POOL_SIZE": "4",
               "DB_POOL_SIZE": "8"}
        secret = env["SECRET_KEY"]
        users, places = setup_district(backing, args.clients, args.idle)
        api_key = backing.create_api_key(env)
        api = ingest.Server("api", SERVE, env, ("GET", "/healthz"))
        # --path floor: both workers with their P0 transaction cut to the least (bench/floor_worker.py);
        # an ordinary worker takes the urgent queue first too, so it must be cut the same way
        cmd = ([sys.executable, str(ROOT / "bench" / "floor_worker.py")] if args.path == "floor"
               else [sys.executable, "-m", "service.cli", "worker"])
        worker = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        urgent = subprocess.Popen([*cmd, "--urgent"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(2)
        if args.only in ("all", "push"):
            out["echo"] = asyncio.run(echo_floor(300, 400))
            print("echo:", json.dumps(out["echo"]), flush=True)
            out["pg_rtt"] = asyncio.run(pg_floor(backing.database_url))
            print("pg round trip:", json.dumps(out["pg_rtt"]), flush=True)
            out["rq_hop"] = rq_hop(backing.redis_url)
            print("rq hop (enqueue → job start):", json.dumps(out["rq_hop"]), flush=True)
            out["rounds"] = asyncio.run(push_rounds(args, backing, api, api_key, users, places, secret))
            summarize(out)
        if args.only in ("all", "idle"):
            want = min(args.idle, max(100, (hard - 500) // 1))
            out["idle"] = asyncio.run(idle_memory(api, want, secret))
            print("idle:", json.dumps(out["idle"], indent=1), flush=True)
    finally:
        for w in (worker, urgent):
            if w is not None:
                w.terminate()
                try:
                    w.wait(10)
                except subprocess.TimeoutExpired:
                    w.kill()
        if api is not None:
            api.stop()
        backing.close()
    print(json.dumps({k: v for k, v in out.items()}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
