"""A city on one machine: districts, phones and screens under a day of pushes, against one district.

    python bench/city.py            # small: 3 districts, ~1 minute
    python bench/city.py --full     # 10 districts, 1,500 beats and squads, 13,000 leads at 60x

A city of `--districts` districts made by the shared generator (each its own region code and place,
`--beats` beats and squads each), imported into one deployment; a day of their leads (13,000 in
all for --full, each district's share) replayed at `--speed` times real time through the city's
key (the platforms push to the city), one POST each at its time; `--phones` squad members' sockets
and `--screens` screens (commanders of each district, a tenth of them the city's) connected over
`--apis` API processes, with `--workers` workers. Then the same run for one district alone (its
share of leads, phones and screens, one API process and one worker), measured the same day.

Measured: push → first offer on a phone of the squad (p50/p99), push → `lead.created` on a screen
of its district (how far the screens lag, p50/p99), leads offered/expected, messages a screen got
about another district (must be 0), and the CPU each part used (seconds per second of the replay:
1.0 is one core busy) — API processes, workers, PostgreSQL, Redis — with the first to saturate
named (the single-threaded part nearest to one core, or the machine's cores all busy).
Speed is measured, never asserted: the exit code is 0.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import ingest  # noqa: E402  (Backing, Server)
from push_latency import SERVE, pct, raise_nofile  # noqa: E402

GENERATOR = ROOT.parent / "shared" / "tools" / "gen_district.py"


# ---------------------------------------------------------------- the city
def generate(n: int, beats: int, leads_per_district: int, out: Path) -> list[Path]:
    """`n` districts on a grid 0.3° apart (no outline touches another), region codes 3702NN."""
    dirs = []
    for i in range(n):
        d = out / f"d{i:02d}"
        if not (d / "leads.jsonl").is_file():
            lon, lat = 120.0 + 0.3 * (i % 5), 35.5 + 0.3 * (i // 5)
            subprocess.run([sys.executable, str(GENERATOR), "--seed", str(100 + i), "--region", f"3702{i + 50:02d}",
                            "--name", f"区{i:02d}", "--center", f"{lon},{lat}", "--radius-km", "9",
                            "--streets", str(max(2, beats // 25)), "--beats", str(beats),
                            "--leads", str(leads_per_district), "--days", "1", str(d)],
                           check=True, stdout=subprocess.DEVNULL)
        dirs.append(d)
    return dirs


def setup(backing: ingest.Backing, dirs: list[Path], phones: int, screens: int) -> dict:
    """Import the districts; every squad on duty at home; phone users (round robin over all squads)
    and screen users (commanders of each district, a tenth of the city center)."""
    from sqlalchemy import text

    from dispatch.district import import_district
    from geo.district import load_district_dir
    from service.core.auth import hash_password
    from service.core.db import make_sync_engine, sync_session

    engine = make_sync_engine(backing.database_url, 1)
    codes = []
    with sync_session(engine) as s:
        for d in dirs:
            data = load_district_dir(d)
            import_district(s, data)
            codes.append(data.code)
        s.commit()
        s.execute(text("UPDATE team SET status = 'on_duty', last_lon = home_lon, last_lat = home_lat, "
                       "last_at = now() + interval '1 day'"))
        teams = [tuple(r) for r in s.execute(text("SELECT code, district_code FROM team ORDER BY district_code, code"))]
        hashed = hash_password("bench")
        people = [(f"phone-{i}", "police", *teams[i % len(teams)]) for i in range(phones)]
        city_screens = max(1, screens // 10) if len(codes) > 1 else 0
        people += [(f"screen-{i}", "commander", None, None if i < city_screens else codes[i % len(codes)])
                   for i in range(screens)]
        s.execute(text("INSERT INTO app_user (username, password_hash, role, team_code, district_code, active) "
                       "SELECT u, :h, r, t, d, true FROM unnest(CAST(:u AS text[]), CAST(:r AS text[]), "
                       "CAST(:t AS text[]), CAST(:d AS text[])) AS x(u, r, t, d)"),
                  {"h": hashed, "u": [p[0] for p in people], "r": [p[1] for p in people],
                   "t": [p[2] for p in people], "d": [p[3] for p in people]})
        s.commit()
    engine.dispose()
    return {"codes": codes, "people": people}


def day_of_leads(dirs: list[Path]) -> list[dict]:
    """Every district's day, source ids made unique across districts, in push order."""
    leads = []
    for i, d in enumerate(dirs):
        with (d / "leads.jsonl").open(encoding="utf-8") as f:
            for line in f:
                lead = json.loads(line)
                lead["source_id"] = f"D{i:02d}-{lead.get('source_id')}"
                leads.append(lead)
    return sorted(leads, key=lambda x: str(x.get("pushed_at")))


def busiest_hours(leads: list[dict], hours: float | None) -> list[dict]:
    """The `hours` of the day with the most leads (all of it when None)."""
    if not hours:
        return leads
    times = [_at(x) for x in leads]
    span, best, j = hours * 3600, (0, 0), 0
    for i, t in enumerate(times):
        while times[j] < t - span:
            j += 1
        best = max(best, (i - j + 1, j))
    n, start = best
    return leads[start:start + n]


def _at(lead: dict) -> float:
    try:
        return datetime.fromisoformat(str(lead["pushed_at"])).timestamp()
    except (KeyError, ValueError):
        return 0.0


# ---------------------------------------------------------------- CPU of each part
def _ticks(pid: int, children: bool = False) -> int:
    """utime + stime (and, with `children`, the reaped children's: a PostgreSQL backend that exits
    leaves its CPU in the postmaster's cutime/cstime)."""
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(parts[11]) + int(parts[12]) + ((int(parts[13]) + int(parts[14])) if children else 0)
    except (OSError, IndexError):
        return 0


def _postgres_ticks() -> int:
    pids = set(_pids("postgres"))
    total = 0
    for pid in pids:
        try:
            ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        total += _ticks(pid, children=ppid not in pids)  # the postmaster carries its exited backends
    return total


def _pids(name: str) -> list[int]:
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if (p / "comm").read_text().strip().startswith(name):
                    out.append(int(p.name))
            except OSError:
                pass
    return out


class Cpu:
    """CPU seconds per part between start() and stop() (/proc, clock ticks)."""

    def __init__(self, parts: dict[str, list[int]]):
        self.parts, self.hz = parts, os.sysconf("SC_CLK_TCK")

    def _read(self) -> dict[str, int]:
        live = {**self.parts, "redis": _pids("redis-server") + _pids("valkey")}
        return {**{k: sum(_ticks(p) for p in pids) for k, pids in live.items()}, "postgresql": _postgres_ticks()}

    def start(self) -> None:
        self.t0, self.a = time.monotonic(), self._read()

    def stop(self) -> dict[str, float]:
        b, wall = self._read(), time.monotonic() - self.t0
        return {k: round((b[k] - self.a.get(k, 0)) / self.hz / wall, 3) for k in b}


# ---------------------------------------------------------------- the run
async def replay(apis: list[ingest.Server], key: str, people: list[tuple], leads: list[dict], speed: float,
                 secret: str) -> dict:
    from websockets.asyncio.client import connect

    from service.core.auth import create_access_token

    offered: dict[int, float] = {}
    created: dict[int, list[float]] = defaultdict(list)
    seen: list[tuple[str | None, int]] = []  # (the screen's district, a lead it was told of)
    screen_district: dict[str, str | None] = {}

    async def open_one(i: int, person: tuple):
        name, role, team, district = person
        api = apis[i % len(apis)]
        token = create_access_token(name, role, team, secret, 600, district=district)
        path = "/api/v1/ws" if role == "police" else "/api/v1/board/ws"
        ws = await connect(f"ws://127.0.0.1:{api.port}{path}", additional_headers={"Authorization": f"Bearer {token}"},
                           compression=None, open_timeout=120, ping_interval=None, max_queue=None)
        screen_district[name] = district

        async def read():
            async for raw in ws:
                now = time.perf_counter()
                m = orjson.loads(raw)
                if m["type"] == "offer":
                    offered.setdefault(m["data"]["lead"]["id"], now)
                    await ws.send(orjson.dumps({"type": "ack", "seq": m["seq"]}).decode())
                elif m["type"] == "lead.created":  # {"lead_ids": [...]}: the worker's batch
                    for lead_id in m["data"].get("lead_ids") or [m["data"].get("id")]:
                        created[lead_id].append(now)
                        seen.append((screen_district[name], lead_id))
        return ws, asyncio.create_task(read())

    t = time.perf_counter()
    socks = []
    for i in range(0, len(people), 200):  # in waves: each server accepts on one core
        socks += await asyncio.gather(*(open_one(i + j, p) for j, p in enumerate(people[i:i + 200])))
    connect_s = time.perf_counter() - t
    await asyncio.sleep(2)

    sent: dict[int, float] = {}
    statuses: dict[int, int] = defaultdict(int)
    t_first = _at(leads[0])
    start = time.perf_counter()
    rng = random.Random(1)
    clients = [httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.port}", headers={"X-API-Key": key}, timeout=60)
               for a in apis]

    async def push(lead: dict) -> None:
        delay = start + (_at(lead) - t_first) / speed - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.perf_counter()
        r = await rng.choice(clients).post("/api/v1/leads", json=lead)
        statuses[r.status_code] += 1
        if r.status_code == 202:
            sent[r.json()["id"]] = t0

    await asyncio.gather(*(push(x) for x in leads))
    replay_s = time.perf_counter() - start
    await asyncio.sleep(5)  # the last offers and screens
    for c in clients:
        await c.aclose()
    first = [(offered[i] - t0) * 1000 for i, t0 in sent.items() if i in offered]
    lag = [(x - t0) * 1000 for i, t0 in sent.items() for x in created.get(i, ())]
    for ws, task in socks:
        task.cancel()
        await ws.close()
    return {"sockets": len(socks), "connect_s": round(connect_s, 1), "pushed": len(leads),
            "answers": dict(statuses), "replay_s": round(replay_s, 1),
            "peak_per_s": max(Counter(int((_at(x) - t_first) / speed) for x in leads).values()), "offered": len(first), "offer_p50_ms": round(pct(first, 50), 1),
            "offer_p99_ms": round(pct(first, 99), 1), "screen_receipts": len(lag),
            "screen_p50_ms": round(pct(lag, 50), 1), "screen_p99_ms": round(pct(lag, 99), 1),
            "_seen": seen}


def run(label: str, dirs: list[Path], phones: int, screens: int, n_apis: int, n_workers: int, speed: float,
        redis_db: int, hours: float | None = None) -> dict:
    ingest.BENCH_REDIS_DB = redis_db
    backing = ingest.Backing()
    apis: list[ingest.Server] = []
    workers: list[subprocess.Popen] = []
    try:
        backing.pick()
        backing.create_database()
        secret = secrets.token_urlsafe(48)
        env = {**os.environ, "DATABASE_URL": backing.database_url, "REDIS_URL": backing.redis_url,
               "SECRET_KEY": secret, "LOG_LEVEL": "WARNING", "SQUAD_WORKLOAD_LIMIT": "1000000",
               "WS_PING_SECONDS": "3600", "INTAKE_POOL_SIZE": "4", "DB_POOL_SIZE": "8"}
        city = setup(backing, dirs, phones, screens)
        key = backing.create_api_key(env)
        leads = busiest_hours(day_of_leads(dirs), hours)
        for i in range(n_apis):
            apis.append(ingest.Server(f"api{i}", SERVE, env, ("GET", "/healthz")))
        for _ in range(n_workers):
            workers.append(subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env, cwd=ROOT,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True))
        time.sleep(2)
        cpu = Cpu({"api": [a.pid for a in apis], "workers": [w.pid for w in workers]})
        cpu.start()
        out = asyncio.run(replay(apis, key, city["people"], leads, speed, secret))
        out["cpu_per_s"] = cpu.stop()
        with backing._conn.cursor() as cur:  # noqa: SLF001 (the bench's own connection)
            owner = dict(cur.execute("SELECT id, district_code FROM lead").fetchall())
        out["foreign_screen_messages"] = sum(1 for mine, lead_id in out.pop("_seen")
                                             if mine is not None and owner.get(lead_id) != mine)
        per_proc = {"api": out["cpu_per_s"]["api"] / n_apis, "workers": out["cpu_per_s"]["workers"] / n_workers,
                    "redis": out["cpu_per_s"]["redis"]}
        total = sum(out["cpu_per_s"].values())
        busiest = max(per_proc, key=per_proc.get)
        out["first_to_saturate"] = ("the machine's cores" if total >= 0.9 * (os.cpu_count() or 1)
                                    else f"{busiest} ({per_proc[busiest]:.2f} of a core per process)")
        out["districts"] = len(dirs)
        print(f"{label}:", json.dumps(out, indent=1), flush=True)
        return out
    finally:
        for w in workers:
            w.terminate()
            try:
                w.wait(10)
            except subprocess.TimeoutExpired:
                w.kill()
        for a in apis:
            a.stop()
        backing.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="10 districts × 150 beats, 13,000 leads, 3,000 phones, "
                                                        "300 screens, 60x")
    ap.add_argument("--districts", type=int)
    ap.add_argument("--beats", type=int, help="beats (and squads) per district")
    ap.add_argument("--leads", type=int, help="leads in the day, all districts")
    ap.add_argument("--speed", type=float)
    ap.add_argument("--phones", type=int)
    ap.add_argument("--screens", type=int)
    ap.add_argument("--apis", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--redis-db", type=int, default=12)
    ap.add_argument("--hours", type=float, help="replay only the busiest HOURS of the day (default: all of it)")
    ap.add_argument("--skip-one", action="store_true", help="the city only, not the one-district comparison")
    args = ap.parse_args(argv)
    full = {"districts": 10, "beats": 150, "leads": 13_000, "speed": 60.0, "phones": 3000, "screens": 300}
    small = {"districts": 3, "beats": 12, "leads": 900, "speed": 1440.0, "phones": 150, "screens": 15}
    cfg = {k: getattr(args, k) if getattr(args, k) is not None else (full if args.full else small)[k] for k in full}
    if not GENERATOR.is_file():
        print(f"bench/city.py needs the shared district generator at {GENERATOR}", file=sys.stderr)
        return 2
    raise_nofile()
    work = Path(tempfile.gettempdir()) / "quanzu-bench-city" / (
        f"{cfg['districts']}x{cfg['beats']}-{cfg['leads']}")
    dirs = generate(cfg["districts"], cfg["beats"], cfg["leads"] // cfg["districts"], work)
    print("config:", json.dumps(cfg), flush=True)
    out = {"city": run("city", dirs, cfg["phones"], cfg["screens"], args.apis, args.workers, cfg["speed"],
                       args.redis_db, args.hours)}
    if not args.skip_one:
        n = cfg["districts"]
        out["one_district"] = run("one district", dirs[:1], max(1, cfg["phones"] // n), max(1, cfg["screens"] // n),
                                  1, 1, cfg["speed"], args.redis_db, args.hours)
        c, o = out["city"], out["one_district"]
        print(f"\npush → offer p50 {c['offer_p50_ms']} ms (one district {o['offer_p50_ms']} ms), "
              f"p99 {c['offer_p99_ms']} ms ({o['offer_p99_ms']} ms); screens p99 {c['screen_p99_ms']} ms "
              f"({o['screen_p99_ms']} ms); first to saturate: {c['first_to_saturate']}", flush=True)
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
