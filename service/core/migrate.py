"""Run Alembic migrations from code (`quanzu migrate`, tests, demo)."""
from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, pool, text

from service.core.settings import driver_url

INI = Path(__file__).resolve().parent.parent / "alembic.ini"
_LOCK = 0x71A2_2E00  # pg advisory lock id: two processes starting at once migrate one after the other


def alembic_config(url: str) -> Config:
    cfg = Config(str(INI))
    cfg.attributes["url"] = url
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    engine = create_engine(driver_url(url, "psycopg"), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK})
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK})
    finally:
        engine.dispose()
