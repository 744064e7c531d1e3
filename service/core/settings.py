"""All configuration comes from the environment, read once into `Settings`."""
from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-only-change-me-please-32bytes!"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    # Unset means "start an embedded server under STATE_DIR" (demo, laptops).
    database_url: str | None = None
    redis_url: str | None = None
    state_dir: Path = ROOT / ".quanzu"
    policy_file: Path | None = None

    secret_key: str = Field(default=DEV_SECRET, min_length=16)
    access_token_minutes: int = 12 * 60
    api_key_cache_seconds: float = 30.0

    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    # A lead left in `received` longer than this is re-enqueued by the reconciler.
    reconcile_after_seconds: float = 5.0
    reconcile_every_seconds: int = 5
    queue_name: str = "quanzu"
    db_pool_size: int = 10  # SQLModel sessions: reads and center actions
    intake_pool_size: int = 16  # asyncpg connections for pushes
    # Committed leads wait this long before their rq job goes out, so that under load one job
    # carries many leads (an enqueue costs more than an INSERT); nothing is lost meanwhile.
    enqueue_linger_seconds: float = 0.05
    # Field dispatch (issue 13). The offer timeout itself is the policy's escalation.offer_timeout_seconds.
    squad_workload_limit: int = 3  # open assignments (offered, accepted, arrived) a squad may hold
    location_stale_seconds: float = 600.0  # an older live location is replaced by home / station
    offer_max_squads: int = 3  # squads asked for one visit before it goes back to the center
    offer_ack_seconds: float = 10.0  # no member acked the offer by then → SMS fallback
    field_page_url: str = "/m/"  # the link in an offer SMS
    field_sweep_every_seconds: int = 5  # expired offers, waiting visits, SMS fallbacks
    visit_waiting_seconds: float = 10.0  # a visit waiting longer than this (lost job) is dispatched by the sweep
    ws_hello_seconds: float = 5.0  # an unauthenticated socket must say hello within this
    ws_send_queue: int = 256  # messages buffered per connection; a slower client is dropped and resumes
    ws_ping_seconds: float = 20.0
    ws_replay_hours: float = 24.0
    log_level: str = "INFO"
    log_json: bool = True


def find_sample_district() -> Path | None:
    """The shared sample district beside this checkout (../shared/data/district). A clone made
    elsewhere finds it beside the checkout it was cloned from (its `origin` remote)."""
    here = ROOT.parent / "shared" / "data" / "district"
    if here.is_dir():
        return here
    try:
        origin = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"], capture_output=True,
                                text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    if origin and Path(origin).is_dir():
        there = Path(origin).resolve().parent / "shared" / "data" / "district"
        return there if there.is_dir() else None
    return None


@lru_cache
def get_settings() -> Settings:
    return Settings()


def driver_url(url: str, driver: str) -> str:
    """`postgresql://…` as clients give it → the SQLAlchemy URL for `driver` (asyncpg or psycopg)."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+")[0]
    if scheme in ("postgres", "postgresql"):
        return urlunsplit(parts._replace(scheme=f"postgresql+{driver}"))
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {parts.scheme!r}")


def plain_url(url: str) -> str:
    """The URL without a SQLAlchemy driver suffix, for asyncpg and psycopg themselves."""
    return urlunsplit(urlsplit(url)._replace(scheme="postgresql"))
