"""Enqueueing work for rq. Jobs go out only after the lead is committed; anything that never
reaches Redis (a crash, a Redis restart) is found again by the reconciler (workers.tasks.reconcile)."""
from __future__ import annotations

import asyncio

from redis import Redis
from rq import Queue, Retry

from service.core.logging import log

CHUNK = 500


def lead_queue(redis: Redis, name: str) -> Queue:
    return Queue(name, connection=redis)


def enqueue_leads(queue: Queue, ids: list[int]) -> None:
    """One job per chunk of leads: a worker places and tiers them in one transaction."""
    # By name: the worker imports the task, this module need not (and the task module imports this one).
    jobs = [Queue.prepare_data("workers.tasks.process_leads", args=(ids[i:i + CHUNK],), result_ttl=0, failure_ttl=7 * 86400,
                               timeout=300) for i in range(0, len(ids), CHUNK)]
    queue.enqueue_many(jobs)


def enqueue_sms(queue: Queue, ids: list[int], retry_intervals: list[int] | None = None) -> None:
    """SMS jobs (up to CHUNK messages each); rq retries a job with backoff (`SMS_RETRY_INTERVALS`)
    while any of its messages is still pending. Only after commit."""
    if not ids:
        return
    intervals = list(retry_intervals if retry_intervals is not None else [5, 30, 120, 600])
    retry = Retry(max=len(intervals), interval=intervals) if intervals else None
    queue.enqueue_many([Queue.prepare_data("workers.tasks.send_sms", args=(ids[i:i + CHUNK],), result_ttl=0,
                                           failure_ttl=7 * 86400, timeout=600, retry=retry)
                        for i in range(0, len(ids), CHUNK)])


class AfterCommit:
    """Hands committed lead ids to rq without holding up the answer. Ids gather for `linger`
    seconds and while an enqueue is in flight, then go out together: under load one job
    carries many leads."""

    def __init__(self, queue: Queue, linger: float = 0.0):
        self.queue, self.linger = queue, linger
        self._pending: list[int] = []
        self._task: asyncio.Task | None = None

    def submit(self, ids: list[int]) -> None:
        if not ids:
            return
        self._pending.extend(ids)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            await asyncio.sleep(self.linger)
            ids, self._pending = self._pending, []
            try:
                await asyncio.to_thread(enqueue_leads, self.queue, ids)
            except Exception as exc:  # Redis down: the leads are safe in PostgreSQL, the reconciler resends
                log.warning("enqueue_failed", leads=len(ids), error=str(exc))

    async def drain(self) -> None:
        """On shutdown: send what is pending (best effort)."""
        if self._task is not None:
            await self._task
