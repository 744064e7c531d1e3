"""POST /api/v1/auth/token: OAuth2 password form → a bearer JWT."""
from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Form, Request
from pydantic import BaseModel
from sqlalchemy import select

from service.core.auth import create_access_token, verify_password
from service.core.db import SessionDep
from service.core.errors import Unauthorized
from service.core.models import User
from service.core.openapi import error_responses
from service.core.params import Name, Secret
from service.core.responses import JSON

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


@router.post("/token", response_model=TokenOut, responses=error_responses(401),
             summary="Log in with username and password (anyone with an account)")
async def token(request: Request, session: SessionDep, form: Annotated[LoginForm, Form()]):
    user = (await session.execute(select(User).where(User.username == form.username))).scalar()
    # argon2 takes tens of milliseconds: off the event loop
    if user is None or not user.active or not await asyncio.to_thread(verify_password, form.password,
                                                                      user.password_hash):
        raise Unauthorized("wrong username or password")
    s = request.app.state.settings
    return JSON({"access_token": create_access_token(user.username, user.role, user.team_code, s.secret_key,
                                                     s.access_token_minutes, district=user.district_code),
                 "token_type": "bearer", "role": user.role, "team_code": user.team_code,
                 "district_code": user.district_code})
