"""`quanzu demo`: a district at work on one machine, from a fresh clone.

Embedded PostgreSQL and Valkey (unless DATABASE_URL / REDIS_URL), a district (ours, generated,
unless --district), demo accounts for every role, the API, a worker, and a simulation: leads
arriving, simulated operators signing and calling, squads answering (h4's `quanzu field-sim` and
h5's `quanzu simulate` when the CLI has them; else the small built-in feeder below).

Stopping: Ctrl-C, SIGTERM (docker stop, systemd) and SIGHUP (a closed terminal) all end in the
same `finally`, which stops the children (each in its own session, so the terminal's signals
reach only us and the order is ours), then the embedded servers. Children also get
PR_SET_PDEATHSIG, so even a `kill -9` of the demo takes them down."""
from __future__ import annotations

import ctypes
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from service.core.logging import log

DEMO_PASSWORD_SUFFIX = "-demo"
CENTER_ACCOUNTS = ("admin", "commander", "operator")
SQUAD_ROLES = ("police", "auxiliary", "grid_worker")


class Stopped(BaseException):
    """Raised in the main thread by SIGTERM / SIGHUP, like KeyboardInterrupt by SIGINT."""


def _raise_stopped(signum, _frame):
    raise Stopped(signal.Signals(signum).name)


def die_with_parent() -> None:
    """For Popen(preexec_fn=…): the child gets SIGTERM when the process that started it dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    essential: bool = True  # the demo ends when an essential child ends


@dataclass
class Demo:
    port: int
    district: Path | None
    state_dir: Path
    say: Callable[[str], None]
    # what this `quanzu` offers: command → (its options, its required options)
    commands: dict[str, tuple[set[str], set[str]]] = field(default_factory=dict)
    feed_every: float = 3.0  # seconds between leads of the built-in feeder
    children: list[Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ the whole run
    def run(self) -> None:
        previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, signal.SIGHUP)}
        urls = None
        try:
            from service.core.runtime import resolve_urls
            from service.core.settings import get_settings

            self.say("starting PostgreSQL and Redis …" if not os.environ.get("DATABASE_URL") else
                     "using DATABASE_URL / REDIS_URL …")
            urls = resolve_urls(get_settings())
            key, accounts = self.prepare(urls)
            env = {**os.environ, "DATABASE_URL": urls.database_url, "REDIS_URL": urls.redis_url,
                   "LOG_JSON": "true", "PYTHONUNBUFFERED": "1"}
            self.spawn("api", ["serve", "--port", str(self.port)], env)
            self.spawn("worker", ["worker"], env)
            self.wait_ready()
            self.start_simulation(env, key)
            self.banner(accounts)
            while not any(c.proc.poll() is not None for c in self.children if c.essential):
                for c in [c for c in self.children if not c.essential and c.proc.poll() is not None]:
                    self.children.remove(c)
                    self.say(f"[yellow]{c.name} ended (exit {c.proc.returncode}, see its log)[/]")
                    if c.name == "simulate":
                        self.start_feeder()
                time.sleep(0.3)
            dead = [c.name for c in self.children if c.essential and c.proc.poll() is not None]
            self.say(f"[red]{', '.join(dead)} stopped (see {self.state_dir / 'logs'}); shutting down[/]")
        except (KeyboardInterrupt, Stopped) as why:
            self.say(f"stopping ({why or 'Ctrl-C'}) …")
        finally:
            for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second signal must not cut cleanup short
                signal.signal(s, signal.SIG_IGN)
            self.shutdown()
            if urls is not None:
                urls.stop()
            self.say("stopped: nothing left running")
            for s, handler in previous.items():
                signal.signal(s, handler)
            signal.signal(signal.SIGINT, signal.default_int_handler)

    # ------------------------------------------------------------------ steps
    def prepare(self, urls) -> tuple[str, list[tuple[str, str, str]]]:
        """Load the district when none is, create the demo accounts and the feeder's API key."""
        from sqlalchemy import delete, select

        from dispatch.district import import_district
        from dispatch.models import Team
        from geo.district import load_district_dir
        from geo.gen_district import write_district
        from geo.models import District
        from service.core.auth import hash_api_key, hash_password, new_api_key
        from service.core.db import make_sync_engine, sync_session
        from service.core.migrate import upgrade
        from service.core.models import ApiKey, User

        upgrade(urls.database_url)  # a given DATABASE_URL too: the demo just works
        engine = make_sync_engine(urls.database_url, pool_size=1)
        try:
            with sync_session(engine) as session:
                if session.execute(select(District.code)).first() is None:
                    directory = self.district
                    if directory is None:
                        directory = self.state_dir / "district"
                        write_district(directory)
                        self.say(f"generated a district in {directory}")
                    data = load_district_dir(directory)
                    import_district(session, data)
                    session.commit()
                    self.say(f"loaded district {data.name}: {len(data.beats)} beats, {len(data.teams)} squads")
                team = session.execute(select(Team.code).order_by(Team.code)).scalar()
                accounts = [(name, name, None) for name in CENTER_ACCOUNTS]
                accounts += [(role, role, team) for role in SQUAD_ROLES]
                for username, role, team_code in accounts:
                    user = session.execute(select(User).where(User.username == username)).scalar()
                    if user is None:
                        user = User(username=username, password_hash="", role=role)
                        session.add(user)
                    user.password_hash = hash_password(username + DEMO_PASSWORD_SUFFIX)
                    user.role, user.team_code, user.active = role, team_code, True
                key = new_api_key()
                session.execute(delete(ApiKey).where(ApiKey.name == "demo-feeder"))
                session.add(ApiKey(name="demo-feeder", key_hash=hash_api_key(key), prefix=key[:8]))
                session.commit()
        finally:
            engine.dispose()
        return key, [(u, u + DEMO_PASSWORD_SUFFIX, t or "") for u, _, t in accounts]

    def spawn(self, name: str, args: list[str], env: dict, essential: bool = True) -> None:
        logs = self.state_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{name}.log", "ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, preexec_fn=die_with_parent)
        self.children.append(Child(name, proc, essential))
        self.say(f"started {name} (pid {proc.pid}, log {logs / f'{name}.log'})")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(c.proc.poll() is not None for c in self.children):
                return  # the main loop reports it
            try:
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)

    def start_simulation(self, env: dict, key: str) -> None:
        self._env, self._key = env, key
        field_sim = self.command_args("field-sim", key)
        if field_sim is not None:
            self.spawn("field-sim", field_sim, env, essential=False)
        simulate = self.command_args("simulate", key)
        if simulate is not None:
            self.spawn("simulate", simulate, env, essential=False)
        else:
            self.start_feeder()

    def command_args(self, name: str, key: str) -> list[str] | None:
        """`quanzu NAME` with the options it has for the server's URL, the API key and the clock's
        speed (other issues build these commands; their exact options are theirs), or None when
        this CLI has no such command or it requires something the demo cannot give."""
        if name not in self.commands:
            return None
        options, required = self.commands[name]
        known = {"--url": self.base, "--base-url": self.base, "--server": self.base, "--api-key": key,
                 "--speed": "60", "--accel": "60"}
        if any(r not in known for r in required):
            return None
        args = [name]
        for opt, value in known.items():
            if opt in options:
                args += [opt, value]
        return args

    def start_feeder(self) -> None:
        threading.Thread(target=Feeder(self.base, self._key, self.feed_every, self._stop).run,
                         name="demo-feeder", daemon=True).start()
        self.say("built-in feeder pushing a lead every few seconds (simulated operators sign and call)")

    def banner(self, accounts: list[tuple[str, str, str]]) -> None:
        self.say(f"\n[bold green]quanzu is up[/]\n  指挥中心大屏  {self.base}/\n  处置队手机页  {self.base}/m/\n"
                 f"  API docs      {self.base}/docs")
        self.say("  demo accounts (user / password / squad):")
        for user, password, team in accounts:
            self.say(f"    {user:<12} {password:<18} {team}")
        self.say("  Ctrl-C stops everything\n")

    def shutdown(self) -> None:
        self._stop.set()
        for c in reversed(self.children):
            if c.proc.poll() is None:
                try:
                    os.killpg(c.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for c in reversed(self.children):
            try:
                c.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(c.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                c.proc.wait()
        self.children.clear()


# ---------------------------------------------------------------------- the built-in feeder
SOURCES = ["national_platform", "provincial_center", "bank_fund_monitor", "hotline_96110", "alarm_110"]
WARNINGS = ["fraud_call", "fraud_sms", "fraud_app", "fraud_url", "fund_transfer", "citizen_report"]
FRAUDS = ["order_brushing", "impersonate_customer_service", "fake_loan", "impersonate_acquaintance",
          "online_shopping", "fake_investment", "impersonate_authority", "game_trading", "online_dating"]
CALL_RESULTS = ["connected", "connected", "no_answer", "busy", "powered_off"]


def demo_lead(rng: random.Random, n: int, beats: list, now: datetime) -> dict:
    """One plausible pushed lead placed at a random point of a random beat."""
    from shapely.geometry import Point, shape

    geom = shape(rng.choice(beats)["geometry"])
    minx, miny, maxx, maxy = geom.bounds
    while True:
        p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
        if geom.contains(p):
            break
    phone = rng.choice(["138", "139", "159", "177", "186", "199"]) + f"{rng.randrange(10**8):08d}"
    return {"source": rng.choice(SOURCES), "source_id": f"DEMO{now:%Y%m%d%H%M%S}{n:05d}",
            "pushed_at": now.astimezone(UTC).isoformat(), "warning_type": rng.choice(WARNINGS),
            "fraud_type": rng.choice(FRAUDS), "risk_level": rng.choice([1, 2, 2, 3, 3, 3]),
            "subject": {"phone": phone, "residency": rng.choice(["resident", "worker", "transient"])},
            "amount_cny": round(rng.uniform(0, 80_000), 2) if rng.random() < 0.4 else None,
            "location": {"lon": round(p.x, 7), "lat": round(p.y, 7), "crs": "wgs84", "accuracy_m": 20,
                         "kind": "gps"}}


@dataclass
class Feeder:
    """Pushes a lead every `every` seconds and plays the operators: signs leads and records call
    results (endpoints of other issues: a 404 there is ignored until they land)."""
    base: str
    api_key: str
    every: float
    stop: threading.Event
    seed: int = 15

    def run(self) -> None:
        rng = random.Random(self.seed + int(time.time()))
        try:
            with httpx.Client(base_url=self.base, timeout=10) as http:
                tok = http.post("/api/v1/auth/token", data={"username": "operator",
                                                            "password": "operator" + DEMO_PASSWORD_SUFFIX})
                op = {"Authorization": f"Bearer {tok.json()['access_token']}"}
                beats = http.get("/api/v1/geo/beats", headers=op).json()["features"]
                n = 0
                while not self.stop.is_set():
                    n += 1
                    lead = demo_lead(rng, n, beats, datetime.now(UTC) - timedelta(seconds=1))
                    r = http.post("/api/v1/leads", json=lead, headers={"X-API-Key": self.api_key})
                    if r.status_code == 202 and rng.random() < 0.7:
                        self.operate(http, op, r.json()["id"], rng)
                    self.stop.wait(self.every * rng.uniform(0.5, 1.5))
        except (httpx.HTTPError, KeyError, ValueError) as e:
            if not self.stop.is_set():
                log.warning("demo_feeder_stopped", error=str(e))

    def operate(self, http: httpx.Client, op: dict, lead_id: int, rng: random.Random) -> None:
        time.sleep(0.5)  # the worker tiers it first
        http.post(f"/api/v1/leads/{lead_id}/sign", headers=op)
        http.post(f"/api/v1/leads/{lead_id}/calls", headers=op, json={"result": rng.choice(CALL_RESULTS)})
