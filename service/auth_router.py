"""POST /api/v1/auth/token: OAuth2 password form → a bearer JWT."""
from __future__ import annotations

import asyncio
import secrets
from functools import lru_cache
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel

from service.core.auth import CurrentUser, create_access_token, ends_tokens, hash_password, verify_password
from service.core.db import unit_of_work
from service.core.errors import Unauthorized
from service.core.openapi import error_responses
from service.core.params import Name, Secret
from service.core.redis import auth_channel
from service.core.responses import JSON
from service.core.signin import SignInLimits

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    role: str
    team_code: str | None
    district_code: str | None = None  # the district the account belongs to; null: the city center


class LoginForm(BaseModel):
    """The OAuth2 password form (grant_type, scope, client_id/secret are accepted and ignored)."""
    username: Name
    password: Secret
    grant_type: Name | None = None


@router.post("/token", response_model=TokenOut, responses=error_responses(401, 429),
             summary="Log in with username and password (anyone with an account)",
             description="Wrong passwords are limited per account and per address (429 with Retry-After): "
                         "see README \"Sign-in limits\".")
async def token(request: Request, form: Annotated[LoginForm, Form()]):
    limits: SignInLimits = request.app.state.signin_limits
    address = request.client.host if request.client else "-"
    await limits.check(form.username, address)
    # One read, no connection held while hashing: argon2 takes tens of milliseconds (more under load).
    user = await request.app.state.intake_pool.fetchrow(_USER, form.username)
    # Off the event loop. An unknown or inactive user costs the same hash work as a known one, so
    # the time of the answer does not tell which usernames exist.
    known = user is not None and user["active"]
    ok = await asyncio.to_thread(verify_password, form.password, user["password_hash"] if known else _dummy_hash())
    if not (ok and known):
        await limits.failed(form.username, address)
        raise Unauthorized("wrong username or password")
    await limits.succeeded(form.username, address)
    s = request.app.state.settings
    return JSON({"access_token": create_access_token(user["username"], user["role"], user["team_code"], s.secret_key,
                                                     s.access_token_minutes, user["token_version"],
                                                     district=user["district_code"]),
                 "token_type": "bearer", "role": user["role"], "team_code": user["team_code"],
                 "district_code": user["district_code"]})


_USER = ("SELECT username, password_hash, role, team_code, district_code, active, token_version FROM app_user "
         "WHERE username = $1")


class LoggedOut(BaseModel):
    ok: bool = True


@router.post("/logout", response_model=LoggedOut, responses=error_responses(401, 403),
             summary="End the caller's token (anyone signed in)",
             description="Bumps the account's token version: this token and every other token of the account "
                         "(other devices, open sockets) end at once; sign in again for a new one.")
async def logout(request: Request, who: CurrentUser):
    async with unit_of_work(request.app.state.sessionmaker) as session:  # committed before sockets re-check
        await session.execute(ends_tokens(who.name))
    try:
        await request.app.state.aredis.publish(auth_channel(), f"user:{who.name}")
    except Exception:  # Redis away: the sockets re-check within WS_RECHECK_SECONDS anyway
        pass
    return {"ok": True}


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))
