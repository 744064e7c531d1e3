"""Waiting for a condition, never for a fixed time: poll it until it holds or a deadline passes.

    await until(lambda: statuses(engine) == {"tiered": 5}, 30, "all 5 leads tiered")
    until_sync(lambda: server.started, 30, "uvicorn started")

`cond` returns something truthy when the wait is over (that value is returned); in `until` it may
also return an awaitable. Past the deadline an AssertionError says what was not reached, and
`what` may be a function, called then, to describe the state it was in. A fixed sleep stays right
only where time itself must pass (an expiry, a linger, pacing a load)."""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

Say = str | Callable[[], str]


def _message(what: Say, seconds: float) -> str:
    return f"not within {seconds:g} s: {what() if callable(what) else what}"


async def until(cond: Callable[[], Any], seconds: float = 30.0, what: Say = "the condition",
                every: float = 0.05) -> Any:
    """Poll `cond` every `every` s, letting the event loop run in between; → its first truthy value."""
    deadline = time.monotonic() + seconds
    while True:
        got = cond()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(_message(what, seconds))
        await asyncio.sleep(every)


def until_sync(cond: Callable[[], Any], seconds: float = 30.0, what: Say = "the condition",
               every: float = 0.05) -> Any:
    """The same for code without an event loop."""
    deadline = time.monotonic() + seconds
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(_message(what, seconds))
        time.sleep(every)


def lock_waiters(engine, holder_pid: int) -> list[int]:
    """The PostgreSQL backends waiting on a lock that backend `holder_pid` holds (a sync engine)."""
    from sqlalchemy import text

    with engine.connect() as conn:
        return list(conn.execute(text("SELECT pid FROM pg_stat_activity WHERE :h = ANY(pg_blocking_pids(pid))"),
                                 {"h": holder_pid}).scalars())
