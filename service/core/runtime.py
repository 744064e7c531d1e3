"""Which PostgreSQL and Redis this process talks to: the configured ones, else embedded servers
under STATE_DIR (started here, or reused when another quanzu process already runs them)."""
from __future__ import annotations

import os
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from service.core.settings import Settings


@dataclass
class Urls:
    database_url: str
    redis_url: str
    embedded: list = field(default_factory=list)  # servers this process started; stop() them on exit

    def stop(self) -> None:
        for server in reversed(self.embedded):
            server.stop()
        self.embedded.clear()


def resolve_urls(settings: Settings, *, migrate: bool = True) -> Urls:
    urls = Urls(settings.database_url or "", settings.redis_url or "")
    if not settings.database_url:
        from service.core.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(settings.state_dir / "pg")
        urls.database_url = pg.start()
        if pg.owned:
            urls.embedded.append(pg)
        if migrate:  # our own database: keep it at head without asking
            from service.core.migrate import upgrade

            upgrade(urls.database_url)
    if not settings.redis_url:
        from service.core.embedded import EmbeddedRedis

        rd = EmbeddedRedis(settings.state_dir / "redis")
        urls.redis_url = rd.start()
        if rd.owned:
            urls.embedded.append(rd)
    return urls


# ---------------------------------------------------------------- servers for tests and benchmarks


@dataclass
class FoundServers:
    """A PostgreSQL (its admin URL) and a Redis, where each came from, and what to stop at the end."""
    database_url: str
    redis_url: str
    database_from: str
    redis_from: str
    started: list = field(default_factory=list)

    def stop(self) -> None:
        for server in reversed(self.started):
            server.stop()
        self.started.clear()


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def find_servers(*, fast: bool, host: str = "127.0.0.1") -> FoundServers:
    """DATABASE_URL / REDIS_URL when set; else PostgreSQL and Redis on `host` when they answer;
    else embedded servers in temporary folders (`fast`: fsync off, for tests only)."""
    from service.core.embedded import EmbeddedPostgres, EmbeddedRedis

    found = FoundServers(os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", ""),
                         "DATABASE_URL", "REDIS_URL")
    if not found.database_url and answers(host, 5432):
        found.database_url, found.database_from = f"postgresql://postgres@{host}:5432/postgres", f"local {host}:5432"
    if not found.database_url:
        base = Path(tempfile.mkdtemp(prefix="quanzu-pg-"))
        base.chmod(0o755)  # the unprivileged server user must reach it
        pg = EmbeddedPostgres(base, fast=fast, database="postgres")
        found.database_url, found.database_from = pg.start(), "embedded"
        found.started.append(pg)
    if not found.redis_url and answers(host, 6379):
        found.redis_url, found.redis_from = f"redis://{host}:6379/0", f"local {host}:6379"
    if not found.redis_url:
        rd = EmbeddedRedis()
        found.redis_url, found.redis_from = rd.start(), "embedded"
        found.started.append(rd)
    return found


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def with_redis_db(url: str, number: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":  # urlunsplit would drop the empty authority: unix:/path
        return f"unix://{parts.path}?db={number}"
    return urlunsplit(parts._replace(path=f"/{number}"))
