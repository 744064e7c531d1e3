"""Real API processes (uvicorn on free ports), real websocket clients, squads with member users."""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from sqlalchemy import text
from websockets.asyncio.client import connect

from service.core import clock
from tests.factories import INSIDE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiProcess:
    """`quanzu serve` (its uvicorn flags: websockets-sansio, no per-message deflate) on a free port."""

    def __init__(self, settings, port: int | None = None, env: dict[str, str] | None = None):
        """`settings`: anything with `database_url` and `redis_url`; `env`: more of the environment."""
        self.settings, self.port, self.extra_env = settings, port or free_port(), env or {}
        self.proc: subprocess.Popen | None = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> ApiProcess:
        env = {**os.environ, "DATABASE_URL": self.settings.database_url, "REDIS_URL": self.settings.redis_url,
               "WS_HELLO_SECONDS": "1", "LOG_LEVEL": "WARNING", "INTAKE_POOL_SIZE": "2", "DB_POOL_SIZE": "4",
               **self.extra_env}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.http + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                raise RuntimeError(f"API process exited with {self.proc.returncode}")
            time.sleep(0.1)
        self.kill()
        raise RuntimeError("API process did not come up")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="session")
def api_a(settings, district):
    p = ApiProcess(settings).start()
    yield p
    p.stop()


@pytest.fixture(scope="session")
def api_b(settings, district):
    p = ApiProcess(settings).start()
    yield p
    p.stop()


class Socket:
    """A squad phone's socket: the contract's messages, pings skipped."""

    def __init__(self, ws):
        self.ws = ws
        self.got: list[dict] = []  # every message received, in order
        self.backlog: list[dict] = []  # received while waiting for something else, not yet returned

    async def recv(self, type_: str | None = None, timeout: float = 15) -> dict:
        for i, msg in enumerate(self.backlog):
            if type_ is None or msg["type"] == type_:
                return self.backlog.pop(i)
        while True:
            msg = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
            if msg["type"] == "ping":
                continue
            self.got.append(msg)
            if type_ is None or msg["type"] == type_:
                return msg
            self.backlog.append(msg)

    async def send(self, **msg) -> None:
        await self.ws.send(orjson.dumps(msg).decode())

    async def ack(self, seq: int) -> None:
        await self.send(type="ack", seq=seq)

    async def command(self, **msg) -> dict:
        await self.send(**msg)
        while True:
            m = await self.recv("result")
            if m.get("id") == msg.get("id"):
                return m

    async def close(self) -> None:
        await self.ws.close()


async def open_socket(base: str, headers: dict | None = None, path: str = "/api/v1/ws", **query) -> Socket:
    qs = "&".join(f"{k}={v}" for k, v in query.items())
    h = {k: v for k, v in (headers or {}).items() if k.lower() == "authorization"}
    ws = await connect(base + path + (f"?{qs}" if qs else ""), additional_headers=h, compression=None,
                       open_timeout=15)
    return Socket(ws)


@dataclass
class SquadUsers:
    code: str
    headers: dict[str, dict] = field(default_factory=dict)  # role → Authorization headers

    def name(self, role: str) -> str:
        return self.headers[role]["X-Username"]


@pytest.fixture
def field_reset(clean, sync_engine):
    """Every squad off duty with no location, no member accounts active: each test sets its own."""
    with sync_engine.begin() as conn:
        conn.execute(text("UPDATE team SET status = 'off_duty', last_lon = NULL, last_lat = NULL, last_at = NULL"))
        conn.execute(text("UPDATE app_user SET active = false WHERE role IN ('police', 'auxiliary', 'grid_worker')"))
        conn.execute(text("UPDATE team_member SET username = NULL"))
    clock.set_offset(__import__("datetime").timedelta(0))
    yield
    clock.set_offset(__import__("datetime").timedelta(0))


@pytest.fixture
def make_squad(field_reset, make_user, sync_engine):
    """make_squad(code, on_duty=True) → a squad with three member accounts, at home with a fresh fix."""
    def make(code: str, on_duty: bool = True) -> SquadUsers:
        s = SquadUsers(code)
        for role in ("police", "auxiliary", "grid_worker"):
            s.headers[role] = make_user(role, code)
        with sync_engine.begin() as conn:
            for role, h in s.headers.items():
                conn.execute(text("UPDATE team_member SET username = :u WHERE team_code = :t AND role = :r"),
                             {"u": h["X-Username"], "t": code, "r": role})
            conn.execute(text("UPDATE team SET status = :s, last_lon = home_lon, last_lat = home_lat, "
                              "last_at = now() WHERE code = :t"), {"s": "on_duty" if on_duty else "off_duty",
                                                                   "t": code})
        return s
    return make


@pytest.fixture
def own_team() -> str:
    return INSIDE["team"]
