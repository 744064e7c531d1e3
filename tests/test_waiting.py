"""tests/waiting.py: a wait ends as soon as its condition holds, and one that never holds fails naming it."""
from __future__ import annotations

import asyncio
import time

import pytest

from tests.waiting import until, until_sync


async def test_until_returns_the_first_truthy_value_of_a_sync_or_async_condition():
    seen = []

    def grows():
        seen.append(1)
        return len(seen) if len(seen) >= 3 else None

    async def later():
        await asyncio.sleep(0)
        return "ready"

    assert await until(grows, 5, "three looks", every=0.01) == 3
    assert await until(later, 5, "an async answer") == "ready"


async def test_until_fails_after_its_deadline_saying_what_and_in_what_state():
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"not within 0.2 s: the queue empty, 4 jobs left"):
        await until(lambda: False, 0.2, lambda: "the queue empty, 4 jobs left", every=0.05)
    assert 0.2 <= time.monotonic() - started < 5


def test_until_sync_waits_for_its_condition_and_fails_the_same_way():
    end = time.monotonic() + 0.1
    assert until_sync(lambda: time.monotonic() >= end, 5, "a tenth of a second", every=0.01) is True
    with pytest.raises(AssertionError, match=r"not within 0.1 s: never"):
        until_sync(lambda: 0, 0.1, "never", every=0.02)
