"""AfterCommit hands committed lead ids to rq: at once after a quiet spell (a P0 lead must not
wait for a batch to fill), and lingering only while busy, so that one job then carries many leads."""
from __future__ import annotations

import asyncio

import orjson
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


async def test_urgent_leads_never_linger_and_a_flood_of_them_leaves_in_few_flushes(redis_url) -> None:
    redis = Redis.from_url(redis_url)
    queue, urgent = Queue("after-commit-ordinary", connection=redis), Queue("after-commit-urgent", connection=redis)
    queue.empty()
    urgent.empty()
    after = AfterCommit(queue, linger=30.0, urgent=urgent)  # the ordinary queue's linger no test waits for
    after.submit([1])
    await asyncio.wait_for(after._task, 10)
    after.submit([2, 3], urgent=[3])  # right after a flush: 2 lingers, 3 goes at once
    await asyncio.wait_for(after._urgent_task, 10)
    assert _jobs(urgent) == [[3]] and _jobs(queue) == [[1]]
    sent = []
    real = after._send
    after._send = lambda queue, ids, enqueue: (sent.append(list(ids)), real(queue, ids, enqueue))
    for i in range(100, 200):  # a flood: each push submits its own urgent lead
        after.submit([i], urgent=[i])
    await asyncio.wait_for(after._urgent_task, 10)
    assert sorted(i for ids in _jobs(urgent)[1:] for i in ids) == list(range(100, 200))  # none lost or doubled
    assert len(sent) == len(_jobs(urgent)) - 1 < 10  # a job per flush, a few flushes, not a hundred
    after._task.cancel()


async def test_in_a_flood_of_urgent_leads_the_next_job_waits_out_the_spacing_and_a_lone_one_never_does(
        redis_url) -> None:
    """A flood of urgent pushes is a few jobs a second, not one per group commit; an urgent lead after
    a quiet spell (a P0 on an ordinary day) still goes out at once."""
    redis = Redis.from_url(redis_url)
    queue, urgent = Queue("after-commit-ordinary", connection=redis), Queue("after-commit-urgent", connection=redis)
    urgent.empty()
    after = AfterCommit(queue, linger=30.0, urgent=urgent, urgent_spacing=1.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    after.submit([1], urgent=[1])
    await asyncio.wait_for(after._urgent_task, 10)
    assert _jobs(urgent) == [[1]] and loop.time() - t0 < 0.8  # quiet before: at once, not after the spacing
    sent_at = loop.time()
    after.submit([2], urgent=[2])  # right after a flush: a flood, so it waits out the spacing
    await asyncio.sleep(0.1)
    after.submit([3, 4], urgent=[3, 4])
    await asyncio.wait_for(after._urgent_task, 10)
    assert _jobs(urgent) == [[1], [2, 3, 4]] and loop.time() - sent_at >= 0.99
    await asyncio.sleep(1.1)  # a quiet spell again
    t0 = loop.time()
    after.submit([5], urgent=[5])
    await asyncio.wait_for(after._urgent_task, 10)
    assert _jobs(urgent) == [[1], [2, 3, 4], [5]] and loop.time() - t0 < 0.8


async def test_a_redis_that_lost_the_publish_script_gets_the_job_once_and_the_boards_news(redis_url) -> None:
    """The urgent job and the board's `lead.created` leave in one pipeline. A Redis without the
    publishing script (restarted) fails the news, not the job: the news is sent again, the job not."""
    from dispatch import outbox

    redis = Redis.from_url(redis_url)
    queue, urgent = Queue("after-commit-ordinary", connection=redis), Queue("after-commit-urgent", connection=redis)
    urgent.empty()
    redis.delete(outbox.stream_key(outbox.BOARD))
    redis.script_flush()
    after = AfterCommit(queue, linger=30.0, urgent=urgent)
    after.submit([7], urgent=[7])
    await asyncio.wait_for(after._urgent_task, 10)
    assert _jobs(urgent) == [[7]]
    news = [orjson.loads(fields[b"m"]) for _id, fields in redis.xrange(outbox.stream_key(outbox.BOARD))]
    assert [(m["type"], m["data"]) for m in news] == [("lead.created", {"lead_ids": [7]})]


async def test_news_the_board_could_not_take_is_logged_as_such_and_the_job_still_leaves(redis_url, capfd) -> None:
    """A failed `lead.created` is not a failed enqueue: the leads are queued, and the log says only
    the board's news is missing (an operator reading "enqueue_failed" would wait for the reconciler)."""
    from dispatch import outbox

    redis = Redis.from_url(redis_url)
    queue, urgent = Queue("after-commit-ordinary", connection=redis), Queue("after-commit-urgent", connection=redis)
    urgent.empty()
    board = outbox.stream_key(outbox.BOARD)
    redis.set(board, "not a stream")  # the script's XADD fails with WRONGTYPE
    try:
        capfd.readouterr()
        after = AfterCommit(queue, linger=30.0, urgent=urgent)
        after.submit([8], urgent=[8])
        await asyncio.wait_for(after._urgent_task, 10)
        logged = "".join(capfd.readouterr())  # the process's log (stderr once configured, else stdout)
    finally:
        redis.delete(board)
    assert _jobs(urgent) == [[8]]
    assert "board_news_failed" in logged and "WRONGTYPE" in logged
    assert "enqueue_failed" not in logged
