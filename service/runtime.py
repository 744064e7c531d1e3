"""Which PostgreSQL and Redis this process talks to: the configured ones, else embedded servers
under STATE_DIR (started here, or reused when another quanzu process already runs them)."""
from __future__ import annotations

from dataclasses import dataclass, field

from service.settings import Settings


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
        from service.embedded import EmbeddedPostgres

        pg = EmbeddedPostgres(settings.state_dir / "pg")
        urls.database_url = pg.start()
        if pg.owned:
            urls.embedded.append(pg)
        if migrate:  # our own database: keep it at head without asking
            from service.migrate import upgrade

            upgrade(urls.database_url)
    if not settings.redis_url:
        from service.embedded import EmbeddedRedis

        rd = EmbeddedRedis(settings.state_dir / "redis")
        urls.redis_url = rd.start()
        if rd.owned:
            urls.embedded.append(rd)
    return urls
