"""Engines and sessions. The API is async (asyncpg); CLI, migrations and workers are sync (psycopg)."""
from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import Session

from service.core.errors import connection_lost
from service.core.settings import driver_url, plain_url


def timeouts(statement_timeout_ms: int, lock_timeout_ms: int) -> dict[str, str]:
    """PostgreSQL session settings so that no statement and no lock wait can stall a caller."""
    return {"statement_timeout": str(statement_timeout_ms), "lock_timeout": str(lock_timeout_ms)}


def make_async_engine(url: str, pool_size: int = 10, server_settings: dict[str, str] | None = None,
                      pool_timeout: float = 10.0) -> AsyncEngine:
    # No overflow: connections past the pool would be opened and closed per request under load,
    # and a PostgreSQL backend costs more to start than the query it serves. Callers wait instead
    # (at most pool_timeout seconds, then 503).
    return create_async_engine(driver_url(url, "asyncpg"), pool_size=pool_size, max_overflow=0,
                               pool_pre_ping=False, pool_timeout=pool_timeout,
                               connect_args={"server_settings": server_settings or {}, "timeout": 10})


async def make_intake_pool(url: str, size: int, server_settings: dict[str, str] | None = None) -> asyncpg.Pool:
    """A plain asyncpg pool for the hot ingest path: one round trip per lead, nothing in between.
    `server_settings` (timeouts()) are set once per connection, not per statement."""
    return await asyncpg.create_pool(plain_url(url), min_size=size, max_size=size, reset=_keep_session,
                                     server_settings=server_settings or {}, timeout=10)


@asynccontextmanager
async def acquire(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A connection of a plain asyncpg pool, never handed out again once the server went away under
    it: one whose server died in the middle of a statement can stay half open, still waiting for the
    end of that statement, and the next push that got it answered 500 (PostgreSQL killed -9,
    bench/kills.py). Such a connection is closed; the pool opens a new one."""
    async with pool.acquire() as conn:
        try:
            yield conn
        except BaseException as exc:
            if connection_lost(exc) and not conn.is_closed():
                conn.terminate()
            raise


async def _keep_session(_conn) -> None:
    """Intake uses no session state (no LISTEN, locks, cursors or SET), so a released connection
    needs no reset query: asyncpg still rolls back an open transaction first."""


def make_sync_engine(url: str, pool_size: int = 5, server_settings: dict[str, str] | None = None) -> Engine:
    options = " ".join(f"-c {k}={v}" for k, v in (server_settings or {}).items())
    return create_engine(driver_url(url, "psycopg"), pool_size=pool_size, max_overflow=pool_size,
                         pool_pre_ping=True, connect_args={"options": options, "connect_timeout": 10})


@contextmanager
def sync_session(engine: Engine) -> Iterator[Session]:
    """One unit of work: the caller commits; anything unfinished is rolled back."""
    with Session(engine, expire_on_commit=False) as session:
        yield session


@asynccontextmanager
async def unit_of_work(maker: async_sessionmaker[AsyncSession], on_commit=None) -> AsyncIterator[AsyncSession]:
    """One unit of work, owned here (as polar's postgres.py): committed when the block ends, rolled
    back when it raises; then `on_commit(session)` sends what the unit of work queued (its outbox).
    Routes, services and socket handlers never commit."""
    async with maker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
    if on_commit is not None:
        on_commit(session)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work. Ends before the answer is sent (scope="function"), so an answer
    always follows its commit, what it queued has left, and a failed commit is answered as an error."""
    async with unit_of_work(request.app.state.sessionmaker, getattr(request.app.state, "on_commit", None)) as s:
        yield s


def separate_unit(request: Request):
    """A unit of work of its own beside the request's: what must stay even when the request fails
    (a refused push is recorded, then answered 422)."""
    return unit_of_work(request.app.state.sessionmaker, getattr(request.app.state, "on_commit", None))


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
