"""Redis stopped and started again under a running API and worker (a Redis this test starts on a
free port: never the machine's): pushes meanwhile are stored and answered 202 (storing a lead needs
PostgreSQL, not Redis), the reconciler's clock fires again afterwards, and every lead ends tiered."""
from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import pytest
from redis import Redis
from sqlalchemy import func, select

from dispatch.models import Lead
from tests.factories import make_lead
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("district", "clean")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _redis_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    from service.tools.embedded import _valkey_bin

    return str(_valkey_bin())


class OwnRedis:
    def __init__(self) -> None:
        self.port, self.dir = _free_port(), tempfile.mkdtemp(prefix="quanzu-redis-")
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([_redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return
            except Exception:
                assert time.monotonic() < deadline, "redis did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


def _statuses(sync_engine) -> dict[str, int]:
    with sync_engine.connect() as conn:
        return dict(conn.execute(select(Lead.status, func.count()).group_by(Lead.status)).all())


async def _wait_for(sync_engine, expected: dict, seconds: float = 90) -> None:
    await until(lambda: _statuses(sync_engine) == expected, seconds,
                lambda: f"lead statuses {expected}, still {_statuses(sync_engine)}", every=0.25)


def _log_since(path: str, offset: int) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return f.read()


async def test_redis_stopped_and_restarted_under_a_running_api_and_worker(settings, sync_engine, source_headers):
    from service.main import create_app

    own = OwnRedis()
    own.start()
    env = {**os.environ, "REDIS_URL": own.url, "RECONCILE_AFTER_SECONDS": "1", "RECONCILE_EVERY_SECONDS": "1",
           "REENQUEUE_AFTER_SECONDS": "2"}
    worker_log = tempfile.NamedTemporaryFile(prefix="quanzu-outage-worker-", suffix=".log", delete=False)
    worker = subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env,
                              stdout=worker_log, stderr=subprocess.STDOUT)
    app = create_app(settings.model_copy(update={"redis_url": own.url, "redis_connect_timeout_seconds": 0.5,
                                                 "redis_socket_timeout_seconds": 1.0}))
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                         timeout=30) as client:
                async def push(n: int) -> list[int]:
                    answers = await asyncio.gather(*[client.post("/api/v1/leads", json=make_lead(),
                                                                 headers=source_headers) for _ in range(n)])
                    assert [a.status_code for a in answers] == [202] * n
                    return [a.json()["id"] for a in answers]

                await push(5)
                await _wait_for(sync_engine, {"tiered": 5})
                outage_at = os.path.getsize(worker_log.name)  # the worker's log from here on is the outage's
                own.stop()
                stopped_at = time.monotonic()
                during = await push(10)  # Redis is down: stored all the same
                r = await client.post("/api/v1/leads/batch", json={"leads": [make_lead() for _ in range(10)]},
                                      headers=source_headers)
                assert r.status_code == 200 and {x["status"] for x in r.json()["results"]} == {"accepted"}
                assert (await client.get("/readyz")).json()["redis"].startswith("error")
                await app.state.after_commit.drain()  # its enqueue failed (logged); nothing hangs
                assert _statuses(sync_engine) == {"tiered": 5, "received": 20}
                # the worker and its clock meet the outage (their logs say so), and Redis stays away long
                # enough for the worker to try again while it is still away (that once killed the process):
                # an outage, not a blip
                def met_the_outage() -> bool:
                    log = _log_since(worker_log.name, outage_at)
                    return "reconciler_tick_failed" in log and ("worker_redis_unavailable" in log  # ours
                                                                or "could not connect to Redis" in log)  # rq's

                await until(met_the_outage, 30, lambda: "the worker and its clock meeting the outage; its log "
                            "since:\n" + _log_since(worker_log.name, outage_at)[-4000:], every=0.1)
                from workers.run import RESTART_AFTER_SECONDS
                await asyncio.sleep(max(0.0, stopped_at + max(2.0, 2.5 * RESTART_AFTER_SECONDS) - time.monotonic()))
                assert worker.poll() is None, _log_since(worker_log.name, 0)[-4000:]
                own.start()  # empty: every job queued before is gone
                try:
                    await _wait_for(sync_engine, {"tiered": 25})  # the reconciler fired again, the worker ran
                except AssertionError:
                    print("worker log:\n" + open(worker_log.name, encoding="utf-8", errors="replace").read()[-6000:])
                    raise
                await push(3)
                await _wait_for(sync_engine, {"tiered": 28})
        assert worker.poll() is None  # the worker lived through it
        with sync_engine.connect() as conn:
            assert set(conn.execute(select(Lead.id).where(Lead.status == "tiered")).scalars()) >= set(during)
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        own.stop()
        shutil.rmtree(own.dir, ignore_errors=True)


async def test_a_hung_redis_hangs_no_request_no_enqueue_and_no_shutdown(settings, sync_engine, source_headers):
    """Redis stopped with SIGSTOP (it accepts connections and answers nothing): pushes are 202,
    /readyz says so, the enqueue thread gives up after its socket timeout, and the app shuts down."""
    import signal

    from service.main import create_app

    own = OwnRedis()
    own.start()
    app = create_app(settings.model_copy(update={"redis_url": own.url, "redis_connect_timeout_seconds": 0.5,
                                                 "redis_socket_timeout_seconds": 1.0}))
    try:
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                         timeout=30) as client:
                own.proc.send_signal(signal.SIGSTOP)
                answers = await asyncio.gather(*[client.post("/api/v1/leads", json=make_lead(),
                                                             headers=source_headers) for _ in range(5)])
                assert [a.status_code for a in answers] == [202] * 5
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["redis"].startswith("error")
                await asyncio.wait_for(app.state.after_commit.drain(), 30)  # the enqueue timed out
        assert _statuses(sync_engine) == {"received": 5}  # stored; the reconciler will send them
    finally:
        if own.proc is not None:
            own.proc.send_signal(signal.SIGCONT)
        own.stop()
        shutil.rmtree(own.dir, ignore_errors=True)
