"""Engines and sessions. The API is async (asyncpg); CLI, migrations and workers are sync (psycopg)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import Session

from service.settings import driver_url


def make_async_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(driver_url(url, "asyncpg"), pool_size=pool_size, max_overflow=pool_size,
                               pool_pre_ping=False)


def make_sync_engine(url: str, pool_size: int = 5) -> Engine:
    return create_engine(driver_url(url, "psycopg"), pool_size=pool_size, max_overflow=pool_size,
                         pool_pre_ping=True)


@contextmanager
def sync_session(engine: Engine) -> Iterator[Session]:
    """One unit of work: the caller commits; anything unfinished is rolled back."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with maker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@asynccontextmanager
async def raw_connection(engine: AsyncEngine):
    """The pooled asyncpg connection itself, for the hot ingest path (one round trip per lead)."""
    async with engine.connect() as conn:
        raw = await conn.get_raw_connection()
        yield raw.driver_connection
