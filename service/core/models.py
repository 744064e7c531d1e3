"""Who may act: people with roles, and the API keys of upstream sources."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, func
from sqlmodel import Field, SQLModel


def _ts(nullable: bool = True, default_now: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None)


class User(SQLModel, table=True):
    __tablename__ = "app_user"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True)
    password_hash: str
    role: str
    team_code: str | None = Field(default=None, foreign_key="team.code")
    active: bool = True
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
