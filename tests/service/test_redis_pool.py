"""The API's async Redis client (service.core.redis.make_async_redis) makes callers beyond its pool
wait for a connection: redis-py's default pool raises "Too many connections" instead, which closed
sockets of a reconnect storm with 1011 (every opening socket replays its stream at once)."""
from __future__ import annotations

import asyncio

from service.core import redis as qr


def test_more_callers_at_once_than_connections_wait_and_all_succeed(redis_url, monkeypatch):
    monkeypatch.setattr(qr, "ASYNC_POOL", 4)

    async def go():
        r = qr.make_async_redis(redis_url)
        try:
            answers = await asyncio.gather(*(r.ping() for _ in range(200)), return_exceptions=True)
            return answers, len(r.connection_pool._in_use_connections) + len(r.connection_pool._available_connections)
        finally:
            await r.aclose()

    answers, opened = asyncio.run(go())
    assert [a for a in answers if a is not True] == []
    assert opened <= 4


def test_a_caller_waits_for_a_connection_no_longer_than_its_client_waits_for_redis(redis_url):
    async def go(*timeouts):
        r = qr.make_async_redis(redis_url, *timeouts)
        try:
            return r.connection_pool.timeout
        finally:
            await r.aclose()

    assert asyncio.run(go(0.5, 1.5)) == 2.0
    assert asyncio.run(go(1.0, None)) == 1.0 + qr.SOCKET_TIMEOUT  # the hub's client: no socket timeout
