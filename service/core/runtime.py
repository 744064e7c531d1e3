"""The PostgreSQL and Redis a process talks to (`Urls`), and URL helpers. The configured servers
always; embedded ones are started only by the CLI and the demo (service.tools.embedded.resolve_urls),
servers for tests and benchmarks are found by tests/servers.py."""
from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit


@dataclass
class Urls:
    database_url: str
    redis_url: str
    embedded: list = field(default_factory=list)  # servers this process started; stop() them on exit

    def stop(self) -> None:
        for server in reversed(self.embedded):
            server.stop()
        self.embedded.clear()


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def with_redis_db(url: str, number: int) -> str:
    parts = urlsplit(url)
    if parts.scheme == "unix":  # urlunsplit would drop the empty authority: unix:/path
        return f"unix://{parts.path}?db={number}"
    return urlunsplit(parts._replace(path=f"/{number}"))
