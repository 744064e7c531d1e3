"""PostgreSQL and Redis servers for tests and benchmarks (never imported by production code).

DATABASE_URL / REDIS_URL when set; else the servers on `host` when they answer; else embedded
servers in temporary folders, through the same `service.tools.embedded` classes `make demo` uses."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from service.tools.embedded import EmbeddedPostgres, EmbeddedRedis, private_temp_dir


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
    """True when something accepts a TCP connection on host:port within a second."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def find_servers(*, fast: bool, host: str = "127.0.0.1") -> FoundServers:
    """DATABASE_URL / REDIS_URL when set; else PostgreSQL and Redis on `host` when they answer;
    else embedded servers in temporary folders (`fast`: fsync off, for tests only)."""
    found = FoundServers(os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", ""),
                         "DATABASE_URL", "REDIS_URL")
    if not found.database_url and answers(host, 5432):
        found.database_url, found.database_from = f"postgresql://postgres@{host}:5432/postgres", f"local {host}:5432"
    if not found.database_url:
        pg = EmbeddedPostgres(private_temp_dir("quanzu-pg-"), fast=fast, database="postgres", temporary=True)
        found.database_url, found.database_from = pg.start(), "embedded"
        found.started.append(pg)
    if not found.redis_url and answers(host, 6379):
        found.redis_url, found.redis_from = f"redis://{host}:6379/0", f"local {host}:6379"
    if not found.redis_url:
        rd = EmbeddedRedis()
        found.redis_url, found.redis_from = rd.start(), "embedded"
        found.started.append(rd)
    return found
