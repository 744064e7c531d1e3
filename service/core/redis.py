"""Redis connections: sync for rq (it is sync), async for pub/sub and live state in the API."""
from __future__ import annotations

from redis import Redis
from redis.asyncio import Redis as AsyncRedis


def make_redis(url: str) -> Redis:
    return Redis.from_url(url)


def make_async_redis(url: str) -> AsyncRedis:
    return AsyncRedis.from_url(url)
