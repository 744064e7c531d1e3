"""AfterCommit hands committed lead ids to rq: at once after a quiet spell (a P0 lead must not
wait for a batch to fill), and lingering only while busy, so that one job then carries many leads."""
from __future__ import annotations

import asyncio

from redis import Redis
from rq import Queue

from workers.queues import AfterCommit


def _jobs(queue: Queue) -> list[list[int]]:
    return [job.args[0] for job in queue.jobs]


async def test_a_lead_after_a_quiet_spell_goes_out_at_once(redis_url) -> None:
    queue = Queue("after-commit-quiet", connection=Redis.from_url(redis_url))
    queue.empty()
    after = AfterCommit(queue, linger=30.0)  # a linger no test waits for
    after.submit([1])
    await asyncio.wait_for(after._task, 10)
    assert _jobs(queue) == [[1]]


async def test_while_busy_the_next_flush_lingers_and_carries_every_lead_that_came(redis_url) -> None:
    queue = Queue("after-commit-busy", connection=Redis.from_url(redis_url))
    queue.empty()
    after = AfterCommit(queue, linger=0.3)
    after.submit([1])
    await asyncio.wait_for(after._task, 10)  # quiet before: sent alone, at once
    after.submit([2])  # right after a flush: busy, so this flush waits for company
    await asyncio.sleep(0.05)
    after.submit([3, 4])
    await asyncio.wait_for(after._task, 10)
    assert _jobs(queue) == [[1], [2, 3, 4]]
    await asyncio.sleep(0.4)  # a quiet spell again
    after.submit([5])
    await asyncio.wait_for(after._task, 10)
    assert _jobs(queue) == [[1], [2, 3, 4], [5]]
