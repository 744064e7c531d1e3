"""Who may act: people with roles, and the API keys of upstream sources."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, Integer, SmallInteger, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True, default_now: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None)


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True)
    password_hash: str
    role: str
    team_code: str | None = Field(default=None, foreign_key="team.code", index=True)  # an offer's members
    district_code: str | None = None  # null: the city center
    active: bool = True
    # Bumped by deactivation, a role, squad or password change: every token of an older version ends.
    token_version: int = Field(default=0, sa_column=Column(Integer, nullable=False, server_default="0"))
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))


class ApiKey(SQLModel, table=True):
    """Keys for upstream sources, stored as SHA-256 (they are long random tokens, not passwords)."""
    __tablename__ = "api_key"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    key_hash: str = Field(unique=True)
    prefix: str
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
    revoked_at: datetime | None = Field(default=None, sa_column=_ts())
    district_code: str | None = None  # null: the city center
    sources: list | None = Field(default=None, sa_column=Column(JSONB))  # the sources it may speak for
    last_used_at: datetime | None = Field(default=None, sa_column=_ts())
    # source: pushes leads, cases, call results (as `sources`, or any when null); gateway: the SMS
    # gateway's receipts and replies only (`create-api-key --gateway`)
    kind: str = Field(default="source", sa_column=Column(String, nullable=False, server_default="source"))


class IdempotentRequest(SQLModel, table=True):
    """An action sent with an `Idempotency-Key` (the field page resends what it made offline): the
    first answer is kept and given again to every resend of the same key by the same user."""
    __tablename__ = "idempotent_request"
    actor: str = Field(primary_key=True)
    key: str = Field(primary_key=True)
    method: str
    path: str
    status_code: int = Field(sa_column=Column(SmallInteger, nullable=False))
    body: dict | list | None = Field(default=None, sa_column=Column(JSONB))
    created_at: datetime = Field(sa_column=_ts(nullable=False, default_now=True))
