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
    # The response ladder (dispatch/actions.py): the deadline sweep, SMS and the gateway's receipts.
    deadline_sweep_every_seconds: int = 5  # how often the workers' sweep looks for due deadlines
    deadline_sweep_batch: int = 500  # due deadlines acted on per transaction
    sms_gateway_url: str | None = None  # unset: the logging gateway (demo)
    sms_gateway_token: str | None = None  # sent as a Bearer token to the gateway, when set
    sms_gateway_key_name: str = "sms-gateway"  # the API key (create-api-key --name) receipts must carry
    sms_timeout_seconds: float = 5.0
    sms_retry_intervals: list[int] = [5, 30, 120, 600]  # seconds between tries (rq Retry); then `failed`
    sms_resend_after_seconds: float = 60.0  # a pending SMS older than this is re-enqueued by the sweep
    sms_templates_file: Path | None = None  # unset: dispatch/sms_templates.toml
    sms_hotline: str = "96110"
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
