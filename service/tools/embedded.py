"""Real PostgreSQL and Redis servers started from wheels when DATABASE_URL / REDIS_URL are unset.

Both servers run as child processes of the quanzu process that started them and die with it
(`server_process`), so a `kill -9` of quanzu never leaves a server behind. A second process
pointed at the same directory reuses the running server (`owned = False`). PostgreSQL
(`postgres_server`) runs as an unprivileged user when quanzu runs as root; Valkey
(`redis_server`) listens on a unix socket only. See docs/embedded-postgres.md and
docs/embedded-redis.md.
"""
from __future__ import annotations

from service.core.runtime import Urls
from service.tools.postgres_server import RELOCATE_ROOT, EmbeddedPostgres, _digest
from service.tools.redis_server import EmbeddedRedis, _valkey_bin
from service.tools.server_process import private_temp_dir

__all__ = ["EmbeddedPostgres", "EmbeddedRedis", "RELOCATE_ROOT", "private_temp_dir", "resolve_urls",
           "_digest", "_valkey_bin"]


def resolve_urls(settings, *, migrate: bool = True) -> Urls:
    """The configured servers, else embedded ones under STATE_DIR (started here, or reused when another
    quanzu process already runs them); `Urls.stop()` stops those this process started."""
    urls = Urls(settings.database_url or "", settings.redis_url or "")
    if not settings.database_url:
        pg = EmbeddedPostgres(settings.state_dir / "pg")
        urls.database_url = pg.start()
        if pg.owned:
            urls.embedded.append(pg)
        if migrate:  # our own database: keep it at head without asking
            from service.core.migrate import upgrade

            upgrade(urls.database_url)
    if not settings.redis_url:
        rd = EmbeddedRedis(settings.state_dir / "redis")
        urls.redis_url = rd.start()
        if rd.owned:
            urls.embedded.append(rd)
    return urls
