"""Redis connections: sync for rq (it is sync), async for pub/sub and live state in the API.

Every client has connect and socket timeouts: a hung Redis (SIGSTOP, a dead link) makes a call
fail after seconds (redis.exceptions.TimeoutError / ConnectionError) instead of hanging a request,
the enqueue thread, a worker or shutdown."""
from __future__ import annotations

from redis import Redis
from redis.asyncio import Redis as AsyncRedis

CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0


def make_redis(url: str, connect_timeout: float = CONNECT_TIMEOUT, socket_timeout: float = SOCKET_TIMEOUT) -> Redis:
    return Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
                          health_check_interval=30)


def make_async_redis(url: str, connect_timeout: float = CONNECT_TIMEOUT,
                     socket_timeout: float | None = SOCKET_TIMEOUT) -> AsyncRedis:
    return AsyncRedis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
                               health_check_interval=30)
