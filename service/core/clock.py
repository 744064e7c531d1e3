"""One clock for every deadline, sweep and offer timeout, so tests (and the demo's accelerated
time) can move it. Production uses the wall clock.

    from service.core import clock
    clock.now()                 # aware UTC datetime
    clock.iso(t)                # a time on the wire: ISO 8601 in the center's zone (+08:00)
    with clock.frozen(t): ...   # tests: time stands at t (advance with clock.advance)

A worker process in tests may be given an offset through QUANZU_CLOCK_OFFSET_SECONDS."""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

CENTER_TZ = timezone(timedelta(hours=8))  # the center's zone: every time on the wire, a naive time is local

_frozen: datetime | None = None
_offset = timedelta(seconds=float(os.environ.get("QUANZU_CLOCK_OFFSET_SECONDS", "0") or 0))


def now() -> datetime:
    return _frozen if _frozen is not None else datetime.now(UTC) + _offset


def advance(delta: timedelta | float) -> datetime:
    """Move the clock forward (frozen or not); returns the new now."""
    global _frozen, _offset
    delta = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
    if _frozen is not None:
        _frozen += delta
    else:
        _offset += delta
    return now()


def set_offset(delta: timedelta) -> None:
    global _offset
    _offset = delta


@contextmanager
def frozen(at: datetime | None = None) -> Iterator[datetime]:
    global _frozen
    before = _frozen
    _frozen = at or datetime.now(UTC)
    try:
        yield _frozen
    finally:
        _frozen = before


def iso(t: datetime | None, timespec: str = "auto") -> str | None:
    """A time as the contract shows it: ISO 8601 in the center's zone (+08:00); None stays None."""
    return t.astimezone(CENTER_TZ).isoformat(timespec=timespec) if t is not None else None


def now_iso() -> str:
    """Now, as stamped on pushed messages (milliseconds)."""
    return iso(now(), "milliseconds")
