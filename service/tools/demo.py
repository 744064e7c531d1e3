"""`quanzu demo`: a district at work on one machine, from a fresh clone.

Embedded PostgreSQL and Valkey (unless DATABASE_URL / REDIS_URL), a district (ours, generated,
unless --district), demo accounts for every role, the API, a worker, and a simulation: leads
arriving with simulated operators' call results (`quanzu simulate` live, `speed` times the wall
clock, logged in as the demo operator) and the squads answering their offers (`quanzu field-sim
--create-users`: one login per roster member of every squad of the district).

Stopping: Ctrl-C, SIGTERM (docker stop, systemd) and SIGHUP (a closed terminal) all end in the
same `finally`, which stops the children (each in its own session, so the terminal's signals
reach only us and the order is ours), then the embedded servers. Children also get
PR_SET_PDEATHSIG, so even a `kill -9` of the demo takes them down."""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

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
    speed: float = 60.0  # simulated seconds per wall second
    per_day: float = 1440.0  # leads per simulated day
    children: list[Child] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ the whole run
    def run(self) -> None:
        previous = {s: signal.signal(s, _raise_stopped) for s in (signal.SIGTERM, signal.SIGHUP)}
        urls = None
        try:
            from service.core.settings import get_settings, local_secret, secret_problem
            from service.tools.embedded import resolve_urls

            self.say("starting PostgreSQL and Redis …" if not os.environ.get("DATABASE_URL") else
                     "using DATABASE_URL / REDIS_URL …")
            urls = resolve_urls(get_settings())
            key, accounts = self.prepare(urls)
            env = {**os.environ, "DATABASE_URL": urls.database_url, "REDIS_URL": urls.redis_url,
                   "LOG_JSON": "true", "PYTHONUNBUFFERED": "1"}
            if secret_problem(get_settings().secret_key):  # the demo's own key, never the repository's
                env["SECRET_KEY"] = local_secret(self.state_dir)
            self.spawn("api", ["serve", "--port", str(self.port)], env)
            self.spawn("worker", ["worker"], env)
            self.spawn("urgent-worker", ["worker", "--urgent"], env)  # leads that may be P0, never behind a batch
            self.wait_ready()
            self.start_simulation(env, key)
            self.banner(accounts)
            progress = Progress(urls.database_url)
            try:
                while not any(c.proc.poll() is not None for c in self.children if c.essential):
                    for c in [c for c in self.children if not c.essential and c.proc.poll() is not None]:
                        self.children.remove(c)
                        self.say(f"[yellow]{c.name} ended (exit {c.proc.returncode}, see its log)[/]")
                    if (line := progress.line()) is not None:
                        self.say(line)
                    time.sleep(0.3)
            finally:
                progress.close()
            dead = [c.name for c in self.children if c.essential and c.proc.poll() is not None]
            self.say(f"[red]{', '.join(dead)} stopped (see {self.state_dir / 'logs'}); shutting down[/]")
        except (KeyboardInterrupt, Stopped) as why:
            self.say(f"stopping ({str(why) or 'Ctrl-C'}) …")
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
        """Load the district when none is, create the demo accounts and the simulation's API key."""
        from sqlalchemy import delete, select

        from dispatch.district import import_district
        from dispatch.models import Team
        from geo.district import load_district_dir
        from geo.models import District
        from service.core.auth import hash_api_key, hash_password, new_api_key
        from service.core.db import make_sync_engine, sync_session
        from service.core.migrate import upgrade
        from service.core.models import ApiKey, User
        from service.tools.gen_district import write_district

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
                session.execute(delete(ApiKey).where(ApiKey.name == "demo-simulate"))
                session.add(ApiKey(name="demo-simulate", key_hash=hash_api_key(key), prefix=key[:8]))
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
        """Squads first (they must be on duty when the first offers go out), then the leads. Both
        run at the demo's speed: squads travel `speed` times faster and stay on scene 10 simulated
        minutes; the simulated operators call 0.5 to 10 simulated minutes after a lead arrives."""
        self.spawn("field-sim", ["field-sim", "--url", self.base, "--create-users",
                                 "--speed-kmh", str(30 * self.speed), "--visit-seconds", str(600 / self.speed)],
                   env, essential=False)
        self.spawn("simulate", ["simulate", "--url", self.base, "--api-key", key, "--username", "operator",
                                "--password", "operator" + DEMO_PASSWORD_SUFFIX, "--speed", str(self.speed),
                                "--per-day", str(self.per_day), "--leads", "100000", "--seed", str(time.time_ns() % 10**6)],
                   env, essential=False)
        self.say(f"simulating {self.per_day:g} leads a day at {self.speed:g}× (operators call, squads answer)")

    def banner(self, accounts: list[tuple[str, str, str]]) -> None:
        self.say(f"\n[bold green]quanzu is up[/]\n  指挥中心大屏  {self.base}/\n  操作员工作台  {self.base}/desk\n"
                 f"  处置队手机页  {self.base}/m/\n"
                 f"  API docs      {self.base}/docs")
        self.say("  demo accounts (user / password / squad):")
        for user, password, team in accounts:
            self.say(f"    {user:<12} {password:<18} {team}")
        self.say("  Ctrl-C stops everything\n")

    def shutdown(self) -> None:
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


@dataclass
class Progress:
    """One readable line every `every` seconds, when something moved: what the district did so far."""
    database_url: str
    every: float = 10.0
    _engine: object = None
    _next: float = 0.0
    _last: tuple = ()

    QUERY = """SELECT (SELECT count(*) FROM lead), (SELECT count(*) FROM lead WHERE tier IS NOT NULL),
                      (SELECT count(*) FROM call_attempt), (SELECT count(*) FROM assignment),
                      (SELECT count(*) FROM assignment WHERE status = 'completed'),
                      (SELECT count(*) FROM lead WHERE status = 'closed')"""

    def line(self) -> str | None:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        from service.core.db import make_sync_engine

        if time.monotonic() < self._next:
            return None
        self._next = time.monotonic() + self.every
        try:
            if self._engine is None:
                self._engine = make_sync_engine(self.database_url, pool_size=1)
            with self._engine.connect() as conn:
                counts = tuple(conn.execute(text(self.QUERY)).one())
        except SQLAlchemyError:
            return None
        if counts == self._last:
            return None
        self._last = counts
        leads, tiered, calls, offers, completed, closed = counts
        return (f"{time.strftime('%H:%M:%S')}  leads {leads} (tiered {tiered}, closed {closed}) · calls {calls} · "
                f"offers {offers} · visits done {completed}")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
