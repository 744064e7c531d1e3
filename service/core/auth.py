"""Who is calling: upstream sources by API key, people by JWT (roles from contract.md)."""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import jwt
from fastapi import Depends, Request
from pwdlib import PasswordHash
from sqlalchemy import select

from service.core.errors import Forbidden, Unauthorized
from service.core.models import ApiKey


class Role(StrEnum):
    admin = "admin"
    commander = "commander"
    operator = "operator"
    police = "police"
    auxiliary = "auxiliary"
    grid_worker = "grid_worker"


CENTER_ROLES = frozenset({Role.admin, Role.commander, Role.operator})
SQUAD_ROLES = frozenset({Role.police, Role.auxiliary, Role.grid_worker})
ALL_ROLES = CENTER_ROLES | SQUAD_ROLES

_passwords = PasswordHash.recommended()  # argon2


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller: a person (role from the token) or an upstream source (role "source"). `district`:
    the district of the city the account belongs to (None: the city center, which sees every district)."""
    name: str
    role: str
    team_code: str | None = None
    district: str | None = None  # the district the account belongs to (None: the city center)
    sources: frozenset[str] | None = None  # an API key bound to sources (None: any)

    @property
    def is_source(self) -> bool:
        return self.role == "source"

    @property
    def actor(self) -> str:
        return f"{'source' if self.role in (SOURCE, GATEWAY) else 'user'}:{self.name}"


SOURCE, GATEWAY = "source", "gateway"  # the roles of API keys
CASES = "cases"  # what a key bound to sources needs among them to push cases (`--source cases`)


def source_refused(who: Principal, source: object, field: str = "source") -> dict | None:
    """The field error when `who` (an API key bound to sources) may not speak for `source`, else None.
    A value that is not a string is left to validation (422)."""
    if who.sources is None or not isinstance(source, str) or source in who.sources:
        return None
    return {"field": field, "message": f"this API key may not speak for {source!r} "
                                       f"(it may for: {', '.join(sorted(who.sources)) or 'nothing'})"}


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    return _passwords.verify(password, hashed)


def new_api_key() -> str:
    return "qz_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_access_token(username: str, role: str, team_code: str | None, secret: str, minutes: int,
                        version: int = 0, district: str | None = None) -> str:
    """`version`: the user's token_version now; bumping it ends this token (check_current).
    `district`: the account's district (None: the city center)."""
    now = datetime.now(UTC)
    claims = {"sub": username, "role": role, "team": team_code, "ver": version, "iat": now,
              "exp": now + timedelta(minutes=minutes)}
    if district is not None:
        claims["district"] = district
    return jwt.encode(claims, secret, algorithm="HS256")


def read_access_token(token: str, secret: str) -> tuple[Principal, int]:
    """→ (who the token says, its token_version); the signature and expiry checked, not the user row."""
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    if claims.get("role") not in ALL_ROLES:
        raise Unauthorized("invalid token: unknown role")
    version = claims.get("ver", 0)
    if not isinstance(version, int) or isinstance(version, bool):
        raise Unauthorized("invalid token: bad version")
    return Principal(claims["sub"], claims["role"], claims.get("team"), claims.get("district")), version


def decode_access_token(token: str, secret: str) -> Principal:
    return read_access_token(token, secret)[0]


_CURRENT = "SELECT token_version, active, role, team_code, district_code FROM app_user WHERE username = $1"
_CURRENT_MANY = ("SELECT username, token_version, active, role, team_code, district_code FROM app_user "
                 "WHERE username = ANY($1::text[])")
NOT_CURRENT = "token no longer valid (signed out, or the account changed): sign in again"


def is_current(row, who: Principal, version: int) -> bool:
    """The user's row (None: gone) still matches what the token says."""
    return not (row is None or not row["active"] or row["token_version"] != version or row["role"] != who.role
                or row["team_code"] != who.team_code or row["district_code"] != who.district)


async def check_current(pool, who: Principal, version: int) -> None:
    """The token still speaks for its user: one indexed lookup per request. Deactivation, a role,
    squad, district or password change and a logout bump `app_user.token_version`: every earlier token ends."""
    if not is_current(await pool.fetchrow(_CURRENT, who.name), who, version):
        raise Unauthorized(NOT_CURRENT)


async def check_current_many(pool, tokens: list[tuple[Principal, int]]) -> list[bool]:
    """`check_current` for many tokens at once (the sockets of a process: one query, not one each)."""
    rows = {r["username"]: r for r in await pool.fetch(_CURRENT_MANY, list({w.name for w, _v in tokens}))}
    return [is_current(rows.get(who.name), who, version) for who, version in tokens]


def ends_tokens(username: str):
    """The statement that ends every token of `username` issued so far: run it in the unit of work
    that deactivates, changes role, squad or password, or signs out."""
    from sqlalchemy import update

    from service.core.models import User

    return update(User).where(User.username == username).values(token_version=User.token_version + 1)


@dataclass(frozen=True, slots=True)
class KeyGrant:
    """What an API key may do: speak for `sources` (None: any), or be the SMS gateway."""
    id: int
    name: str
    sources: frozenset[str] | None
    gateway: bool
    district: str | None = None  # the district the key belongs to (None: the city center)
    _who: Principal | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:  # built once per cached key, not once per push
        object.__setattr__(self, "_who", Principal(self.name, GATEWAY if self.gateway else SOURCE,
                                                   district=self.district, sources=self.sources))

    def principal(self) -> Principal:
        return self._who  # type: ignore[return-value]


class ApiKeyCache:
    """API keys are checked on every push; a short in-process cache keeps that off the database.
    A revocation (`quanzu revoke-api-key`) is announced on the deployment's auth channel and every
    process forgets its cache at once (mobile_api.connections.Hub); `ttl` is the safety net. Use is
    recorded in `api_key.last_used_at`, at most once a minute per key and process."""

    USED_EVERY = 60.0

    def __init__(self, ttl: float, gateway_name: str = "sms-gateway"):
        self.ttl, self.gateway_name = ttl, gateway_name
        self._hits: dict[str, tuple[float, KeyGrant | None]] = {}
        self._used: dict[int, float] = {}

    def clear(self) -> None:
        self._hits.clear()

    async def lookup(self, request: Request, key: str) -> KeyGrant | None:
        digest = hash_api_key(key)
        now = time.monotonic()
        hit = self._hits.get(digest)
        if hit and hit[0] > now:
            grant = hit[1]
        else:
            async with request.app.state.sessionmaker() as session:
                row = (await session.execute(
                    select(ApiKey.id, ApiKey.name, ApiKey.sources, ApiKey.kind, ApiKey.district_code)
                    .where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))).first()
            grant = None if row is None else KeyGrant(
                row.id, row.name, None if row.sources is None else frozenset(row.sources),
                row.kind == GATEWAY or row.name == self.gateway_name, row.district_code)
            if len(self._hits) > 10_000:
                self._hits.clear()
            self._hits[digest] = (now + self.ttl, grant)
        if grant is not None and now - self._used.get(grant.id, float("-inf")) >= self.USED_EVERY:
            self._used[grant.id] = now
            await _mark_used(request, grant.id)
        return grant


async def _mark_used(request: Request, key_id: int) -> None:
    try:
        await request.app.state.intake_pool.execute("UPDATE api_key SET last_used_at = now() WHERE id = $1", key_id)
    except Exception:  # bookkeeping: never in the caller's way
        pass


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


async def current_principal(request: Request) -> Principal:
    key = request.headers.get("x-api-key")
    if key:
        grant = await request.app.state.api_keys.lookup(request, key)
        if grant is None:
            raise Unauthorized("unknown or revoked API key")
        return grant.principal()
    token = _bearer(request)
    if not token:
        raise Unauthorized()
    who, version = read_access_token(token, request.app.state.settings.secret_key)
    await check_current(request.app.state.intake_pool, who, version)
    return who


class RequireRole:
    """`Depends(RequireRole(Role.commander, ...))`: 401 without credentials, 403 for another role."""

    def __init__(self, *roles: str, sources: bool = False, gateway: bool = False):
        self.roles = frozenset(roles)
        self.sources, self.gateway = sources, gateway

    async def __call__(self, request: Request) -> Principal:
        # current_principal is called, not declared as a sub-dependency: one level of dependency
        # solving less on every request (intake is measured, bench/ingest.py).
        principal = await current_principal(request)
        if principal.role == GATEWAY:
            if not self.gateway:
                raise Forbidden("the SMS gateway's API key may only post its receipts and replies")
        elif principal.is_source:
            if not self.sources:
                raise Forbidden("API keys may only push leads")
        elif principal.role not in self.roles:
            raise Forbidden(f"role {principal.role!r} may not do this")
        return principal


CurrentUser = Annotated[Principal, Depends(RequireRole(*ALL_ROLES))]
CenterUser = Annotated[Principal, Depends(RequireRole(*CENTER_ROLES))]
# Who may push leads; also called directly by intake's fast path (dispatch.intake.router.push_lead_direct).
lead_pushers = RequireRole(Role.admin, Role.commander, Role.operator, sources=True)
LeadPusher = Annotated[Principal, Depends(lead_pushers)]
AnyCaller = Annotated[Principal, Depends(RequireRole(*ALL_ROLES, sources=True))]
