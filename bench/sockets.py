"""Phones per process: idle sockets and their memory, a reconnect storm, and the board's fan-out.

    python bench/sockets.py [--idle 20000] [--storm 10000] [--rate 200] [--screens 300]
                            [--events 50] [--seconds 30] [--clients 4] [--only all|idle|storm|board]
                            [--redis-db 10]

One quanzu API process (`quanzu serve`, with its WebSocket flags:
websockets-sansio, no per-message deflate) on a fresh database with the shared district (dropped at the
end) and the Redis db of `--redis-db` (flushed). The phones are `--clients` client processes (one
Python process cannot drive 20,000 sockets and read their messages in time), each on its own
loopback address; RLIMIT_NOFILE is raised for them and for the server.

1. **idle**: `--idle` authenticated sockets (operators' own streams) opened in waves, nothing sent;
   the API process's RSS before and after → KiB per socket. Goal ≤ 30 KiB at 20,000. Floor, in the
   same run: a bare websockets server (bench/ws_echo.py, its own process) holding as many sockets.
2. **storm**: `--storm` squad members' sockets (users with team codes) connected, `--rate` stream
   messages a second published to their streams (dispatch.outbox.publish, random members), then
   every socket dropped at once (the client side aborts its TCP connections: the field after a
   network blip) and reconnected at once with `?last_seq=` (the protocol's resume); one more
   message is published to every member while they are away. Measured from the drop: time until
   every socket is open again, time until every socket has every message published up to the drop
   and the burst (resumed); at the end, per stream, what it holds against what its client got by
   seq: missed (must be 0), duplicates, gaps. `--storm-by restart` kills the API process (-9)
   instead and starts a new one (a pod restart): the same figures.
3. **board**: `--screens` board sockets (`/api/v1/board/ws`, commanders: the city's board) while
   `--events` board events a second are published for `--seconds`: the lag from publish to each
   screen (p50/p99/max), and whether anyone fell behind (closed as too slow and resumed, a seq gap,
   missed); how long after the last event every screen had it.

Measured, never asserted: the exit code is 0.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import resource
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (Backing, Server: the same servers and database handling)
from push_latency import SERVE, pct, rss_kib, setup_district  # noqa: E402

NOFILE = 65536


def raise_nofile(want: int = NOFILE) -> int:
    """As root the hard limit may go up too (children inherit it: the server and the clients)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, hard), max(want, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- the phones (one client process)


class Phone:
    """One socket and what it got, by seq."""
    __slots__ = ("name", "token", "path", "last", "got", "dups", "gaps", "ws", "opens", "reopened", "resumed",
                 "target", "lags", "closes", "failures")

    def __init__(self, name: str, token: str, path: str):
        self.name, self.token, self.path = name, token, path
        self.last = self.got = self.dups = self.gaps = self.failures = 0
        self.ws = None
        self.opens = 0
        self.reopened = self.resumed = None  # seconds after the drop
        self.target = None  # the seq it must reach to count as resumed
        self.lags: list[float] | None = None
        self.closes: list[int] = []


def client_main(conn, jobs: list[tuple[str, str, str]], port: int, local_ip: str, record_lag: bool) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, resource.getrlimit(resource.RLIMIT_NOFILE)[1:] * 2)
    asyncio.run(_client(conn, jobs, port, local_ip, record_lag))


async def _client(conn, jobs, port: int, local_ip: str, record_lag: bool) -> None:
    import orjson
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    loop = asyncio.get_running_loop()
    phones = [Phone(*j) for j in jobs]
    for ph in phones:
        ph.lags = [] if record_lag else None
    state = {"port": port, "drop": None, "stop": False}
    commands: asyncio.Queue = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))

    def resumed(ph: Phone, now: float) -> None:
        if ph.resumed is None and ph.target is not None and ph.last >= ph.target and state["drop"] is not None:
            ph.resumed = now - state["drop"]

    async def run(ph: Phone, opened: asyncio.Future | None) -> None:
        while not state["stop"]:
            url = f"ws://127.0.0.1:{state['port']}{ph.path}" + (f"?last_seq={ph.last}" if ph.last else "")
            try:
                ws = await connect(url, additional_headers={"Authorization": f"Bearer {ph.token}"}, compression=None,
                                   open_timeout=300, ping_interval=None, close_timeout=2, max_size=None,
                                   max_queue=None, local_addr=(local_ip, 0))
            except Exception:  # refused (a restarting server), a full backlog that timed out: again
                ph.failures += 1
                if opened is not None and not opened.done() and ph.failures > 20:
                    opened.set_result(False)
                await asyncio.sleep(0.2 + random.random() * 0.3)
                continue
            ph.ws, ph.opens = ws, ph.opens + 1
            if state["drop"] is not None and ph.reopened is None:
                ph.reopened = time.time() - state["drop"]
            if opened is not None and not opened.done():
                opened.set_result(True)
            try:
                async for text in ws:
                    m = orjson.loads(text)
                    seq = m.get("seq")
                    if seq is None:  # ping, result
                        continue
                    now = time.time()
                    if seq <= ph.last:
                        ph.dups += 1
                        continue
                    ph.gaps += seq - ph.last - 1
                    ph.last, ph.got = seq, ph.got + 1
                    if ph.lags is not None and "t" in m["data"]:
                        ph.lags.append(now - m["data"]["t"])
                    resumed(ph, now)
            except ConnectionClosed:
                pass
            if ws.close_code is not None:
                ph.closes.append(ws.close_code)
            ph.ws = None

    tasks = []
    while True:
        cmd, *arg = await commands.get()
        if cmd == "connect":  # in waves: the set-up is not the storm
            t = time.time()
            for i in range(0, len(phones), 100):
                opened = [loop.create_future() for _ in phones[i:i + 100]]
                tasks += [asyncio.create_task(run(ph, f)) for ph, f in zip(phones[i:i + 100], opened)]
                await asyncio.gather(*opened)
            conn.send(("connected", sum(ph.ws is not None for ph in phones), time.time() - t))
        elif cmd == "drop":  # every socket at once, no close frame: the network went away
            state["drop"] = arg[0]
            for ph in phones:
                if ph.ws is not None:
                    ph.ws.transport.abort()
            conn.send(("dropped", time.time()))
        elif cmd == "mark":  # the drop happened elsewhere (the server was killed)
            state["drop"] = arg[0]
            conn.send(("marked",))
        elif cmd == "port":
            state["port"] = arg[0]
            conn.send(("port",))
        elif cmd == "targets":
            now = time.time()
            for ph in phones:
                ph.target = arg[0].get(ph.name)
                resumed(ph, now)
            conn.send(("targets",))
        elif cmd == "status":
            conn.send(("status", sum(ph.reopened is not None for ph in phones),
                       sum(ph.resumed is not None for ph in phones), sum(ph.ws is not None for ph in phones)))
        elif cmd == "behind":  # how many have not reached this seq yet
            conn.send(("behind", sum(ph.last < arg[0] for ph in phones)))
        elif cmd == "report":
            conn.send(("report", [{"name": ph.name, "last": ph.last, "got": ph.got, "dups": ph.dups, "gaps": ph.gaps,
                                   "reopened": ph.reopened, "resumed": ph.resumed, "closes": ph.closes,
                                   "opens": ph.opens, "failures": ph.failures, "lags": ph.lags} for ph in phones]))
        elif cmd == "close":
            state["stop"] = True
            for ph in phones:
                if ph.ws is not None:
                    ph.ws.transport.abort()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            conn.send(("closed",))
            return


class Phones:
    """`n` client processes sharing the jobs, each on its own loopback address."""

    def __init__(self, jobs: list[tuple[str, str, str]], port: int, n: int, record_lag: bool = False):
        ctx = mp.get_context("spawn")
        self.pipes, self.procs = [], []
        for i in range(n):
            parent, child = ctx.Pipe()
            p = ctx.Process(target=client_main, args=(child, jobs[i::n], port, f"127.0.{i + 1}.1", record_lag),
                            daemon=True)
            p.start()
            self.pipes.append(parent)
            self.procs.append(p)

    def ask(self, *cmd, timeout: float = 900) -> list:
        for p in self.pipes:
            p.send(cmd)
        out = []
        for p in self.pipes:
            if not p.poll(timeout):
                raise RuntimeError(f"a client process did not answer {cmd[0]!r} in {timeout:g} s")
            out.append(p.recv())
        return out

    def report(self) -> list[dict]:
        return [r for _k, rows in self.ask("report") for r in rows]

    def close(self) -> None:
        try:
            self.ask("close", timeout=60)
        except Exception:
            pass
        for p in self.procs:
            p.join(10)
            if p.is_alive():
                p.kill()


# ---------------------------------------------------------------- publishing


class Publisher(threading.Thread):
    """`rate` stream messages a second to random targets (dispatch.outbox.publish, every 10 ms)."""

    def __init__(self, redis, targets: list[str], rate: float, type_: str = "lead.updated"):
        super().__init__(daemon=True)
        self.redis, self.targets, self.rate, self.type = redis, targets, rate, type_
        self.stop_at: float | None = None
        self.sent = 0
        self.done = threading.Event()

    def run(self) -> None:
        from dispatch.outbox import Push, publish

        rng = random.Random(5)
        t0 = time.perf_counter()
        while not self.done.is_set():
            due = int((time.perf_counter() - t0) * self.rate) - self.sent
            if due > 0:
                now = time.time()
                publish(self.redis, [Push(rng.choice(self.targets), self.type, {"t": now, "n": self.sent + i})
                                     for i in range(due)])
                self.sent += due
            time.sleep(0.01 if self.rate > 100 else 0.002)

    def stop(self) -> None:
        self.done.set()
        self.join()


def seqs(redis, names: list[str]) -> dict[str, int]:
    from dispatch.outbox import seq_key

    out = {}
    for i in range(0, len(names), 1000):
        part = names[i:i + 1000]
        out.update({n: int(v or 0) for n, v in zip(part, redis.mget([seq_key(n) for n in part]))})
    return out


def tally(rows: list[dict], final: dict[str, int]) -> dict:
    missed = sum(max(0, final[r["name"]] - r["got"] - 0) for r in rows)  # seqs 1..final each once
    return {"missed": missed, "duplicates": sum(r["dups"] for r in rows), "gaps": sum(r["gaps"] for r in rows),
            "messages_in_streams": sum(final[r["name"]] for r in rows), "got": sum(r["got"] for r in rows),
            "closed_too_slow": sum(r["closes"].count(4408) for r in rows)}


# ---------------------------------------------------------------- 1. idle


def bare_floor(n: int, clients: int) -> dict:
    """The same number of sockets on a bare websockets server (bench/ws_echo.py): its RSS growth."""
    port = ingest._free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "ws_echo.py"), str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # the aborted sockets' tracebacks
    try:
        proc.stdout.readline()
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        phones = Phones([(f"bare-{i}", "x", "/") for i in range(n)], port, clients)
        try:
            opened = sum(a[1] for a in phones.ask("connect"))
            time.sleep(3)
            after = rss_kib(proc.pid)
        finally:
            phones.close()
        return {"sockets": opened, "rss_before_mib": round(before / 1024, 1), "rss_after_mib": round(after / 1024, 1),
                "kib_per_socket": round((after - before) / opened, 2) if opened else None}
    finally:
        proc.terminate()
        proc.wait()


def idle(api: ingest.Server, n: int, secret: str, clients: int) -> dict:
    from service.core.auth import create_access_token

    jobs = [(f"idle-{i}", create_access_token(f"idle-{i}", "operator", None, secret, 600), "/api/v1/ws")
            for i in range(n)]
    time.sleep(1)
    before = rss_kib(api.pid)
    phones = Phones(jobs, api.port, clients)
    try:
        t = time.time()
        answers = phones.ask("connect")
        took = time.time() - t
        opened = sum(a[1] for a in answers)
        time.sleep(5)
        after = rss_kib(api.pid)
    finally:
        phones.close()
    return {"sockets": opened, "connect_s": round(took, 1), "rss_before_mib": round(before / 1024, 1),
            "rss_after_mib": round(after / 1024, 1),
            "kib_per_socket": round((after - before) / opened, 2) if opened else None}


# ---------------------------------------------------------------- 2. storm


def storm(api: ingest.Server, users: list[tuple[str, str]], secret: str, redis, rate: float, clients: int,
          by: str, restart) -> tuple[dict, ingest.Server]:
    from service.core.auth import create_access_token

    names = [u for u, _t in users]
    jobs = [(u, create_access_token(u, "police", team, secret, 600), "/api/v1/ws") for u, team in users]
    phones = Phones(jobs, api.port, clients)
    pub = None
    try:
        t = time.time()
        opened = sum(a[1] for a in phones.ask("connect"))
        connect_s = time.time() - t
        pub = Publisher(redis, names, rate)
        pub.start()
        time.sleep(5)  # messages flowing
        drop = time.time()
        if by == "restart":
            os.kill(api.pid, signal.SIGKILL)
            api.proc.wait()
            phones.ask("mark", drop)
        else:
            phones.ask("drop", drop)
        # While they are away: one more message for every member (each needs a replay, or gets it live).
        from dispatch.outbox import Push, publish
        for i in range(0, len(names), 1000):
            publish(redis, [Push(n, "lead.updated", {"t": time.time(), "burst": True}) for n in names[i:i + 1000]])
        targets = seqs(redis, names)
        restart_s = None
        if by == "restart":
            api = restart()
            restart_s = time.time() - drop
            phones.ask("port", api.port)
        phones.ask("targets", targets)
        deadline = time.time() + 600
        while time.time() < deadline:
            st = phones.ask("status")
            if sum(s[2] for s in st) >= opened:
                break
            time.sleep(0.2)
        waited = time.time() - drop
        time.sleep(3)
        pub.stop()
        pub = None
        time.sleep(3)  # the last messages arrive
        final = seqs(redis, names)
        rows = phones.report()
    finally:
        if pub is not None:
            pub.stop()
        phones.close()
    reopened = [r["reopened"] for r in rows if r["reopened"] is not None]
    resumed = [r["resumed"] for r in rows if r["resumed"] is not None]
    return {"sockets": opened, "connect_s": round(connect_s, 1), "by": by, "rate_per_s": rate,
            "restart_s": round(restart_s, 2) if restart_s else None,
            "reconnected": len(reopened), "all_reconnected_s": round(max(reopened), 2) if reopened else None,
            "reconnected_p50_s": round(pct(reopened, 50), 2) if reopened else None,
            "resumed": len(resumed), "all_resumed_s": round(max(resumed), 2) if resumed else None,
            "resumed_p50_s": round(pct(resumed, 50), 2) if resumed else None, "waited_s": round(waited, 1),
            "reconnect_failures": sum(r["failures"] for r in rows), **tally(rows, final)}, api


# ---------------------------------------------------------------- 3. board


def board(api: ingest.Server, screens: list[str], secret: str, redis, events: float, seconds: float,
          clients: int) -> dict:
    from dispatch.outbox import BOARD
    from service.core.auth import create_access_token

    jobs = [(u, create_access_token(u, "commander", None, secret, 600), "/api/v1/board/ws") for u in screens]
    phones = Phones(jobs, api.port, clients, record_lag=True)
    try:
        opened = sum(a[1] for a in phones.ask("connect"))
        time.sleep(2)
        pub = Publisher(redis, [BOARD], events, "stats")
        pub.start()
        time.sleep(seconds)
        pub.stop()
        stopped = time.time()
        final = seqs(redis, [BOARD])[BOARD]
        while sum(b for _k, b in phones.ask("behind", final)) and time.time() - stopped < 120:
            time.sleep(0.2)
        caught_up = time.time() - stopped
        rows = phones.report()
    finally:
        phones.close()
    lags = [x * 1000 for r in rows for x in r["lags"]]
    behind = [r for r in rows if r["gaps"] or r["got"] < final or r["closes"] or r["opens"] > 1]
    return {"screens": opened, "events_per_s": events, "seconds": seconds, "events": final,
            "all_caught_up_after_s": round(caught_up, 2),
            "deliveries": len(lags), "lag_p50_ms": round(pct(lags, 50), 2), "lag_p99_ms": round(pct(lags, 99), 2),
            "lag_max_ms": round(max(lags), 2) if lags else None, "fell_behind": len(behind),
            **tally(rows, {r["name"]: final for r in rows})}


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--idle", type=int, default=20_000)
    ap.add_argument("--storm", type=int, default=10_000)
    ap.add_argument("--rate", type=float, default=200, help="stream messages a second to the members in the storm")
    ap.add_argument("--storm-by", choices=("client", "restart"), default="client")
    ap.add_argument("--screens", type=int, default=300)
    ap.add_argument("--events", type=float, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=4, help="client processes")
    ap.add_argument("--no-floor", action="store_true", help="skip the bare websockets floor")
    ap.add_argument("--redis-db", type=int, default=10)
    ap.add_argument("--only", choices=("all", "idle", "storm", "board"), default="all")
    args = ap.parse_args(argv)
    nofile = raise_nofile()
    print(f"load: {os.getloadavg()}; nofile {nofile}", flush=True)
    out: dict = {"load_before": os.getloadavg()}
    ingest.BENCH_REDIS_DB = args.redis_db
    backing = ingest.Backing()
    api = None
    try:
        backing.pick()
        backing.create_database()
        env = {**os.environ, "DATABASE_URL": backing.database_url, "REDIS_URL": backing.redis_url,
               "SECRET_KEY": os.environ.get("SECRET_KEY") or secrets.token_urlsafe(48), "LOG_LEVEL": "WARNING",
               "INTAKE_POOL_SIZE": "4", "DB_POOL_SIZE": "8"}
        os.environ.update({k: env[k] for k in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY")})  # our own key()
        secret = env["SECRET_KEY"]
        do = {k: args.only in ("all", k) for k in ("idle", "storm", "board")}
        if args.idle > nofile - 64:  # the server's own descriptors: pools, Redis, the listener, logs
            print(f"--idle {args.idle} > what RLIMIT_NOFILE {nofile} leaves: {nofile - 64}", flush=True)
            args.idle = nofile - 64
        users, _places = setup_district(backing, args.storm if do["storm"] else 0, args.idle if do["idle"] else 0)
        screens = [f"screen-{i}" for i in range(args.screens if do["board"] else 0)]
        if screens:
            backing._conn.execute("INSERT INTO app_user (username, password_hash, role, active) "
                                  "SELECT u, 'x', 'commander', true FROM unnest(CAST(%s AS text[])) AS u", (screens,))

        def start() -> ingest.Server:
            return ingest.Server("api", SERVE, env, ("GET", "/healthz"))

        from redis import Redis
        redis = Redis.from_url(backing.redis_url)
        api = start()
        if do["idle"]:
            if not args.no_floor:
                out["idle_floor"] = bare_floor(args.idle, args.clients)
                print("idle floor (bare websockets):", json.dumps(out["idle_floor"]), flush=True)
            out["idle"] = idle(api, args.idle, secret, args.clients)
            print("idle:", json.dumps(out["idle"]), flush=True)
        if do["storm"]:
            out["storm"], api = storm(api, users, secret, redis, args.rate, args.clients, args.storm_by, start)
            print("storm:", json.dumps(out["storm"]), flush=True)
        if do["board"]:
            out["board"] = board(api, screens, secret, redis, args.events, args.seconds, args.clients)
            print("board:", json.dumps(out["board"]), flush=True)
    finally:
        if api is not None:
            api.stop()
        backing.close()
    out["load_after"] = os.getloadavg()
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
