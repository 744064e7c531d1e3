"""Redis connections: sync for rq (it is sync), async for pub/sub and live state in the API.

Every client has connect and socket timeouts: a hung Redis (SIGSTOP, a dead link) makes a call
fail after seconds (redis.exceptions.TimeoutError / ConnectionError) instead of hanging a request,
the enqueue thread, a worker or shutdown.

REDIS_URL is a plain Redis URL (`redis://`, `rediss://` for TLS, `unix://`), or a Sentinel-backed
Redis: `redis+sentinel://[[user]:password@]host:port[,host:port...]/<master name>[/<db>]`
(`?sentinel_password=` when the sentinels themselves require one; no TLS through a Sentinel). The client asks the sentinels for the current master and asks again after a
failover (redis-py's SentinelConnectionPool), for rq, the clock and the sockets' fan-out alike."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from redis import Redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from service.core.settings import get_settings

CONNECT_TIMEOUT = 2.0
SOCKET_TIMEOUT = 5.0
ASYNC_POOL = 100  # connections of an API process's async client; more callers at once wait their turn
SENTINEL_SCHEMES = ("redis+sentinel",)


@dataclass(frozen=True)
class SentinelUrl:
    sentinels: list[tuple[str, int]]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None


def parse_sentinel_url(url: str) -> SentinelUrl | None:
    """A `redis+sentinel://` URL → its parts; None for any other URL. A URL that says sentinel but
    lacks a host or the master's name is a ValueError naming what is missing."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        return None
    auth, _, hosts = parts.netloc.rpartition("@")
    username, _, password = auth.partition(":") if auth else ("", "", "")
    sentinels = []
    for host in filter(None, hosts.split(",")):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "26379")
        sentinels.append((name, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not sentinels or not path:
        raise ValueError("REDIS_URL with a Sentinel is redis+sentinel://[:password@]host:port[,host:port]/MASTER[/DB]")
    query = parse_qs(parts.query)
    return SentinelUrl(sentinels=sentinels, master=unquote(path[0]), db=int(path[1]) if len(path) > 1 else 0,
                       username=unquote(username) or None, password=unquote(password) or None,
                       sentinel_password=(query.get("sentinel_password") or [None])[0])


def _sentinel_args(s: SentinelUrl, connect_timeout: float, socket_timeout: float | None) -> tuple[dict, dict]:
    """(the Sentinel's own arguments, the master client's)."""
    sentinel_kwargs = {"socket_connect_timeout": connect_timeout, "socket_timeout": connect_timeout + SOCKET_TIMEOUT,
                       "password": s.sentinel_password}
    master = {"db": s.db, "username": s.username, "password": s.password,
              "socket_connect_timeout": connect_timeout, "socket_timeout": socket_timeout, "health_check_interval": 30}
    return sentinel_kwargs, master


def make_redis(url: str, connect_timeout: float = CONNECT_TIMEOUT, socket_timeout: float = SOCKET_TIMEOUT) -> Redis:
    sentinel = parse_sentinel_url(url)
    if sentinel is not None:
        sentinel_kwargs, master = _sentinel_args(sentinel, connect_timeout, socket_timeout)
        return Sentinel(sentinel.sentinels, sentinel_kwargs=sentinel_kwargs).master_for(sentinel.master, **master)
    return Redis.from_url(url, socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
                          health_check_interval=30)


def make_async_redis(url: str, connect_timeout: float = CONNECT_TIMEOUT,
                     socket_timeout: float | None = SOCKET_TIMEOUT) -> AsyncRedis:
    sentinel = parse_sentinel_url(url)
    if sentinel is not None:
        sentinel_kwargs, master = _sentinel_args(sentinel, connect_timeout, socket_timeout)
        return AsyncSentinel(sentinel.sentinels, sentinel_kwargs=sentinel_kwargs).master_for(sentinel.master, **master)
    # A pool that waits when all its connections are busy: redis-py's default pool raises instead
    # ("Too many connections"), which a reconnect storm's thousands of replays at once turned into
    # sockets closed with 1011 and presence not written (bench/sockets.py). A caller waits at most as
    # long as one command may take (this client's timeouts; the hub's has no socket timeout).
    wait = connect_timeout + (SOCKET_TIMEOUT if socket_timeout is None else socket_timeout)
    pool = BlockingConnectionPool.from_url(url, max_connections=ASYNC_POOL, timeout=wait,
                                           socket_connect_timeout=connect_timeout, socket_timeout=socket_timeout,
                                           health_check_interval=30)
    return AsyncRedis.from_pool(pool)


def key(name: str) -> str:
    """A Redis key or channel of this deployment: `<REDIS_NAMESPACE>:<name>` (default namespace
    `quanzu:<database name>`). Pub/sub ignores database numbers, so a deployment's channel must carry
    its own name: two deployments on one server (any db) never hear each other."""
    return f"{get_settings().redis_prefix}:{name}"


def auth_channel() -> str:
    """`user:<name>` (its tokens ended: open sockets re-check) and `keys` (an API key revoked: every
    process forgets its cached keys), heard by every API process's hub."""
    return key("auth")


def announce(redis, event: str) -> None:
    """Tell every API process now (sync client; best effort: sockets re-check on their own within
    WS_RECHECK_SECONDS, cached keys expire within API_KEY_CACHE_SECONDS)."""
    try:
        redis.publish(auth_channel(), event)
    except Exception:  # Redis away: the fallbacks above still hold
        pass
