"""All configuration comes from the environment, read once into `Settings`."""
from __future__ import annotations

import os
import re
import secrets
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parents[2]
DEV_SECRET = "dev-only-change-me-please-32bytes!"  # known to every reader: signs nothing real
MIN_SECRET_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    # Unset means "start an embedded server under STATE_DIR" (demo, laptops).
    database_url: str | None = None
    redis_url: str | None = None
    state_dir: Path = ROOT / ".quanzu"
    policy_file: Path | None = None

    # Signs the tokens. `serve` and `worker` refuse the development key and anything shorter than
    # MIN_SECRET_BYTES (secret_problem); the embedded demo makes one of its own under STATE_DIR.
    secret_key: str = Field(default=DEV_SECRET, min_length=16)
    access_token_minutes: int = 12 * 60
    api_key_cache_seconds: float = 30.0  # safety net: a revocation reaches every process at once (pub/sub)
    # Sign-in limits (service.core.signin), Redis counters over a window: wrong passwords for one
    # account from one address lock that pair, growing (5 min, 10, 20 … up to the max); for one
    # account from anywhere, a short fixed lock (an attacker cannot keep an officer out for long);
    # from one address over every account, growing.
    signin_window_seconds: int = Field(default=300, ge=1)
    signin_failures_per_account_address: int = Field(default=5, ge=1)
    signin_failures_per_account: int = Field(default=20, ge=1)
    signin_failures_per_address: int = Field(default=50, ge=1)
    signin_lock_seconds: int = Field(default=300, ge=1)
    signin_lock_max_seconds: int = Field(default=3600, ge=1)
    # Every Redis key, channel and rq queue of this deployment starts with it (service.core.redis.key);
    # unset: `quanzu:<database name>`, so two deployments on one Redis server never meet — pub/sub
    # ignores database numbers.
    redis_namespace: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,100}$")

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
    # Urgent leads (may be P0) go out at once after a quiet spell; in a flood of them, their next rq
    # job leaves no sooner than this after the last one (a lone P0 never waits for it).
    urgent_spacing_seconds: float = 0.02
    # Nothing stalls: a statement or a lock wait past these fails (503 + Retry-After to the caller).
    statement_timeout_ms: int = 15_000
    lock_timeout_ms: int = 2_000
    # Single pushes waiting for the group writer; past this, 503 + Retry-After (bounded memory).
    intake_max_pending: int = 5_000
    # Group writes of single pushes in flight at once (dispatch.intake.repository.GroupWriter).
    intake_writes_in_flight: int = 2
    # Redis: a hung server never hangs a request, the enqueue thread, the worker or shutdown.
    redis_connect_timeout_seconds: float = 2.0
    redis_socket_timeout_seconds: float = 5.0
    # A lead whose processing (place and tier) failed this many times is flagged processing_failed
    # and no longer retried; the reconciler also skips leads it enqueued in the last N seconds.
    max_processing_attempts: int = 5
    reenqueue_after_seconds: float = 30.0
    # The center's geocoder for address-only leads (geo/geocode.py): nominatim (its own server,
    # GEOCODER_URL) or baidu (GEOCODER_KEY; GEOCODER_URL optional, a gateway). Unset: none.
    geocoder: Literal["nominatim", "baidu"] | None = None
    geocoder_url: str | None = None
    geocoder_key: str | None = None
    geocoder_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    # The audit chain's HMAC key (dispatch/audit.py); unset: derived from SECRET_KEY. Changing
    # it makes every existing seal fail `quanzu audit verify`.
    audit_key: str | None = Field(default=None, min_length=16)
    # A lead_event / access_log row not sealed this long after it was written breaks the chain.
    audit_unsealed_window_seconds: float = 300.0
    # Field dispatch (issue 13). The offer timeout itself is the policy's escalation.offer_timeout_seconds.
    squad_workload_limit: int = 3  # open assignments (offered, accepted, arrived) a squad may hold
    location_stale_seconds: float = 600.0  # an older live location is replaced by home / station
    offer_max_squads: int = 3  # squads asked for one visit before it goes back to the center
    offer_ack_seconds: float = 10.0  # no member acked the offer by then → SMS fallback
    # An open offer a member with a live socket has not had this long after it was made (its push was
    # lost with Redis, or dropped as already seen after Redis lost its counters) is pushed again.
    offer_repush_seconds: float = 5.0
    field_page_url: str = "/m/"  # the link in an offer SMS
    field_sweep_every_seconds: int = 5  # expired offers, waiting visits, SMS fallbacks
    visit_waiting_seconds: float = 10.0  # a visit waiting longer than this (lost job) is dispatched by the sweep
    ws_hello_seconds: float = 5.0  # an unauthenticated socket must say hello within this
    ws_send_queue: int = 256  # messages buffered per connection; a slower client is dropped and resumes
    ws_ping_seconds: float = 20.0
    ws_recheck_seconds: float = 10.0  # an open socket re-checks its token against the user this often
    ws_replay_hours: float = 24.0
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
    # SMS channels (issue 21, README "Connect your SMS channel"): SMS_GATEWAY names the gateway; unset
    # means `http` when SMS_GATEWAY_URL is set, else `log`.
    sms_gateway: Literal["log", "http", "kannel", "aliyun"] | None = None
    sms_sender: str = "96110"  # the number the person sees (Kannel's `from`)
    public_url: str | None = None  # where the gateway reaches quanzu (Kannel's dlr-url), e.g. http://10.0.0.2:8000
    sms_gateway_api_key: str | None = None  # the gateway's API key itself (in the dlr-url Kannel calls back)
    kannel_sendsms_url: str | None = None  # e.g. http://127.0.0.1:13013/cgi-bin/sendsms
    kannel_username: str | None = None
    kannel_password: str | None = None
    aliyun_access_key_id: str | None = None
    aliyun_access_key_secret: str | None = None
    aliyun_sms_sign_name: str | None = None  # 短信签名, e.g. 反诈中心
    aliyun_sms_endpoint: str = "dysmsapi.aliyuncs.com"  # host[:port]; http://host:port for a local stand-in
    aliyun_template_warning: str | None = None  # template codes per purpose (SMS_123456789)
    aliyun_template_flash_warning: str | None = None  # unset: the warning's
    aliyun_template_offer: str | None = None
    aliyun_template_family: str | None = None
    aliyun_receipts_every_seconds: int = 60  # QuerySendDetails sweep for messages sent and not final
    # Calls through the phone network (dispatch/ladder/phone.py; README "Connect your phones"): each
    # line is a baresip user agent driven through its ctrl_tcp module, e.g.
    # SIP_LINES='{"default": {"ctrl": "127.0.0.1:4441", "dial": "sip:{number}@127.0.0.1:5071"}}'
    # (`dial`: how the person's number becomes a SIP URI on this PBX or trunk). A desk dials on the
    # line it names, else the line named after the operator, else `default`.
    sip_lines: dict[str, dict[str, str]] = {}
    sip_ring_timeout_seconds: float = Field(default=45.0, gt=0)  # unanswered this long → no_answer
    sip_call_limit_seconds: float = Field(default=1800.0, gt=0)  # a call still up this long is ended
    sip_connect_timeout_seconds: float = Field(default=3.0, gt=0)  # reaching the line's ctrl_tcp
    dial_queue_name: str = "quanzu-dial"  # its own queue: a dial holds its worker for the whole call
    dial_resend_after_seconds: float = 30.0  # a dial no worker picked up is sent once more, then failed
    # Feedback to the sources (dispatch/outcomes/feedback.py): a failed delivery is tried again after
    # base·2^(n-1) seconds (at most the cap); after the last attempt it goes to the dead-letter list.
    feedback_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    feedback_backoff_seconds: float = Field(default=10.0, ge=0)
    feedback_backoff_max_seconds: float = Field(default=3600.0, ge=0)
    feedback_max_attempts: int = Field(default=10, ge=1)
    feedback_sweep_every_seconds: int = 5  # the workers' clock resends what is due
    robot_tags_file: Path | None = None  # unset: dispatch/ladder/robot_tags.toml
    log_level: str = "INFO"
    # `quanzu worker` serves its Prometheus metrics on this port (http://host:PORT/metrics); unset: none.
    # The API serves its own at /metrics.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    # The screens draw the district's own polygons as the base map; a center with an intranet tile
    # server may set e.g. http://tiles.local/{z}/{x}/{y}.png (never a server outside the network).
    ui_tile_url: str | None = None
    ui_tile_attribution: str = ""
    # JSON lines for log collectors; unset: readable lines when stderr is a terminal, else JSON.
    log_json: bool | None = None

    @property
    def redis_prefix(self) -> str:
        if self.redis_namespace:
            return self.redis_namespace
        name = urlsplit(self.database_url).path.strip("/") if self.database_url else ""
        return "quanzu:" + (re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "quanzu")

    @model_validator(mode="after")
    def _geocoder_complete(self) -> Settings:
        if self.geocoder == "nominatim" and not self.geocoder_url:
            raise ValueError("GEOCODER=nominatim needs GEOCODER_URL (the center's Nominatim, e.g. http://10.0.0.5:8080)")
        if self.geocoder == "baidu" and not self.geocoder_key:
            raise ValueError("GEOCODER=baidu needs GEOCODER_KEY (the Baidu Maps API key)")
        need = {"kannel": ("kannel_sendsms_url", "kannel_username", "kannel_password", "public_url",
                           "sms_gateway_api_key"),
                "aliyun": ("aliyun_access_key_id", "aliyun_access_key_secret", "aliyun_sms_sign_name",
                           "aliyun_template_warning")}.get(self.sms_gateway or "", ())
        missing = [n.upper() for n in need if not getattr(self, n)]
        if missing:
            raise ValueError(f"SMS_GATEWAY={self.sms_gateway} needs {', '.join(missing)}")
        return self


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


def secret_problem(secret: str) -> str | None:
    """Why SECRET_KEY cannot sign tokens of a real deployment (one line), or None."""
    how = "e.g. SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(48))')"
    if secret == DEV_SECRET:
        return f"SECRET_KEY is not set (the development key in the repository would sign anyone's tokens): {how}"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"SECRET_KEY is {len(secret.encode())} bytes, needs at least {MIN_SECRET_BYTES} random bytes: {how}"
    if len(set(secret)) < 10:
        return f"SECRET_KEY repeats a few characters: give it {MIN_SECRET_BYTES} random bytes, {how}"
    return None


def local_secret(state_dir: Path) -> str:
    """The embedded demo's own SECRET_KEY: random, made once under STATE_DIR (mode 0600)."""
    path = state_dir / "secret_key"
    if not path.exists():
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another quanzu process made it just now
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48) + "\n")
    return path.read_text().strip()


def audit_secret(settings: Settings) -> str:
    return settings.audit_key or settings.secret_key


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
