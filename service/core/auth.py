"""Who is calling: upstream sources by API key, people by JWT (roles from contract.md)."""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
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
    district: str | None = None

    @property
    def is_source(self) -> bool:
        return self.role == "source"

    @property
    def actor(self) -> str:
        return f"{'source' if self.is_source else 'user'}:{self.name}"


def hash_password(password: str) -> str:
    return _passwords.hash(password)


def verify_password(password: str, hashed: str) -> bool:
    return _passwords.verify(password, hashed)


def new_api_key() -> str:
    return "qz_" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_access_token(username: str, role: str, team_code: str | None, secret: str, minutes: int,
                        district: str | None = None) -> str:
    now = datetime.now(UTC)
    claims = {"sub": username, "role": role, "team": team_code, "iat": now, "exp": now + timedelta(minutes=minutes)}
    if district is not None:
        claims["district"] = district
    return jwt.encode(claims, secret, algorithm="HS256")


def decode_access_token(token: str, secret: str) -> Principal:
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub", "exp"]})
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {exc}") from None
    if claims.get("role") not in ALL_ROLES:
        raise Unauthorized("invalid token: unknown role")
    return Principal(claims["sub"], claims["role"], claims.get("team"), claims.get("district"))


class ApiKeyCache:
    """API keys are checked on every push; a short in-process cache keeps that off the database.
    A revoked key stops working within `ttl` seconds."""

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._hits: dict[str, tuple[float, Principal | None]] = {}

    async def lookup(self, request: Request, key: str) -> Principal | None:
        """The source the key speaks for (with its district: None for a key of the city center)."""
        digest = hash_api_key(key)
        now = time.monotonic()
        hit = self._hits.get(digest)
        if hit and hit[0] > now:
            return hit[1]
        async with request.app.state.sessionmaker() as session:
            row = (await session.execute(select(ApiKey.name, ApiKey.district_code).where(
                ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))).first()
        who = Principal(row[0], "source", None, row[1]) if row is not None else None
        if len(self._hits) > 10_000:
            self._hits.clear()
        self._hits[digest] = (now + self.ttl, who)
        return who


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


async def current_principal(request: Request) -> Principal:
    key = request.headers.get("x-api-key")
    if key:
        who = await request.app.state.api_keys.lookup(request, key)
        if who is None:
            raise Unauthorized("unknown or revoked API key")
        return who
    token = _bearer(request)
    if not token:
        raise Unauthorized()
    return decode_access_token(token, request.app.state.settings.secret_key)


class RequireRole:
    """`Depends(RequireRole(Role.commander, ...))`: 401 without credentials, 403 for another role."""

    def __init__(self, *roles: str, sources: bool = False):
        self.roles = frozenset(roles)
        self.sources = sources

    async def __call__(self, request: Request) -> Principal:
        # current_principal is called, not declared as a sub-dependency: one level of dependency
        # solving less on every request (intake is measured, bench/ingest.py).
        principal = await current_principal(request)
        if principal.is_source:
            if not self.sources:
                raise Forbidden("API keys may only push leads")
        elif principal.role not in self.roles:
            raise Forbidden(f"role {principal.role!r} may not do this")
        return principal


CurrentUser = Annotated[Principal, Depends(RequireRole(*ALL_ROLES))]
CenterUser = Annotated[Principal, Depends(RequireRole(*CENTER_ROLES))]
LeadPusher = Annotated[Principal, Depends(RequireRole(Role.admin, Role.commander, Role.operator, sources=True))]
AnyCaller = Annotated[Principal, Depends(RequireRole(*ALL_ROLES, sources=True))]
