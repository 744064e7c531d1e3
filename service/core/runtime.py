"""Which PostgreSQL and Redis this process talks to: the configured ones, else embedded servers
under STATE_DIR (started here, or reused when another quanzu process already runs them).
Servers for tests and benchmarks are found by tests/servers.py."""
from __future__ import annotations

from dataclasses import dataclass, field
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


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def with_redis_db(url: str, number: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":  # urlunsplit would drop the empty authority: unix:/path
        return f"unix://{parts.path}?db={number}"
    return urlunsplit(parts._replace(path=f"/{number}"))
