"""Sending what committed work queued: rq jobs and socket pushes go out only after the commit that
caused them (`send`, for the API and the workers alike); anything that never reaches Redis (a crash,
a Redis restart) is found again by the reconciler and the sweeps (workers.tasks)."""
from __future__ import annotations

import asyncio
import time

from redis import Redis
from redis.client import Pipeline
from rq import Queue, Retry

from dispatch import metrics, outbox
from dispatch.field.squads import geo_at_key, geo_key
from service.core.logging import log
from service.core.redis import key
from service.core.settings import get_settings

CHUNK = 500
# Lead id → when the reconciler last resent it (a sorted set). It skips leads it resent lately, so
# no duplicate jobs pile up behind a busy worker: a lead waiting in the queue gets at most one
# resend per reenqueue_after_seconds. A Redis restart empties it with the queue, and then
# everything still `received` is sent again, as it must be.
def enqueued_key() -> str:
    return key("enqueued")


def rq_queue_name(name: str) -> str:
    """QUEUE_NAME / DIAL_QUEUE_NAME as rq sees them: in the deployment's namespace, so two deployments
    on one Redis never take each other's jobs (rq's own keys follow the queue's name)."""
    return key(name)


def lead_queue(redis: Redis, name: str) -> Queue:
    return Queue(rq_queue_name(name), connection=redis)


def urgent_queue_name() -> str:
    return get_settings().queue_name + ":urgent"


def urgent_queue(redis: Redis) -> Queue:
    """Leads that may be P0 (a transfer in progress): never behind a batch of others."""
    return Queue(rq_queue_name(urgent_queue_name()), connection=redis)


def worker_queues(redis: Redis, urgent_only: bool = False) -> list[Queue]:
    """What a worker listens on, in order: the urgent queue first (rq takes the first queue that
    has a job), then, unless it is an urgent worker, the ordinary one."""
    return [urgent_queue(redis)] + ([] if urgent_only else [lead_queue(redis, get_settings().queue_name)])


def enqueue_leads(queue: Queue, ids: list[int], mark: bool = False, pipeline: Pipeline | None = None) -> None:
    """One job per chunk of leads: a worker places and tiers them in one transaction. With `mark`
    (the reconciler's resends) the ids' enqueue times go out in the same pipeline (one round
    trip); the hot path after commit sends each lead once and needs no mark. Given a `pipeline`, the
    commands join it and its owner sends them."""
    # By name: the worker imports the task, this module need not (and the task module imports this one).
    jobs = [Queue.prepare_data("workers.tasks.process_leads", args=(ids[i:i + CHUNK],), result_ttl=0, failure_ttl=7 * 86400,
                               timeout=300) for i in range(0, len(ids), CHUNK)]
    pipe = pipeline if pipeline is not None else queue.connection.pipeline()
    queue.enqueue_many(jobs, pipeline=pipe)
    if mark:
        pipe.zadd(enqueued_key(), dict.fromkeys(ids, time.time()))
    if pipeline is None:
        pipe.execute()


def enqueue_urgent(queue: Queue, ids: list[int], pipeline: Pipeline | None = None) -> None:
    """Leads that may be P0 (Policy.urgent_lane): one job for the ids of one flush on the urgent
    queue (an rq job costs the API ~0.2 ms of CPU to make: one per lead was a fifth of a flood's
    push), worked a lead per transaction (workers.tasks.process_urgent). Every worker takes that queue
    before the ordinary one; `quanzu worker --urgent` takes it alone. Given a `pipeline`, the job
    joins it (rq alone sends two round trips: the queue's name, then the job)."""
    queue.enqueue_call("workers.tasks.process_urgent", args=(ids,), result_ttl=0, failure_ttl=7 * 86400, timeout=300,
                       pipeline=pipeline)


def recently_enqueued(redis: Redis, ids: list[int], within_seconds: float) -> set[int]:
    """Which of `ids` were enqueued in the last `within_seconds`; older marks are dropped."""
    if not ids:
        return set()
    cutoff = time.time() - within_seconds
    with redis.pipeline() as pipe:
        pipe.zremrangebyscore(enqueued_key(), "-inf", cutoff)
        pipe.zmscore(enqueued_key(), ids)
        _removed, scores = pipe.execute()
    return {i for i, score in zip(ids, scores) if score is not None}


def enqueue_visits(queue: Queue, visit_ids: list[int]) -> None:
    """Visits need a squad (dispatch.outbox.visit_needs_squad): one job; the sweep catches a lost one."""
    queue.enqueue("workers.tasks.dispatch_visits", visit_ids, result_ttl=0, failure_ttl=7 * 86400, job_timeout=300)


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


def dial_queue(redis: Redis) -> Queue:
    """Dials have a queue of their own: a dial holds its worker for the whole call (ringing, then the
    conversation), and must never hold up placing and tiering."""
    return Queue(rq_queue_name(get_settings().dial_queue_name), connection=redis)


def enqueue_dials(redis: Redis, dial_ids: list[int]) -> None:
    """One job per dial (`workers.tasks.dial`), after commit; the dial sweep finds a lost one."""
    settings = get_settings()
    timeout = int(settings.sip_ring_timeout_seconds + settings.sip_call_limit_seconds + 120)
    q = dial_queue(redis)
    q.enqueue_many([Queue.prepare_data("workers.tasks.dial", args=(i,), result_ttl=0, failure_ttl=7 * 86400,
                                       timeout=timeout) for i in dial_ids])


def enqueue_feedback(queue: Queue, sources: list[str]) -> None:
    """One job for the sources whose feedback rows committed (`workers.tasks.deliver_feedback`);
    the rows are the truth: a lost job is found again by the feedback sweep."""
    queue.enqueue("workers.tasks.deliver_feedback", sorted(set(sources)), result_ttl=0, failure_ttl=7 * 86400,
                  job_timeout=600)


def send(box: outbox.Outbox, redis: Redis, queue: Queue, sms_retry_intervals: list[int] | None = None,
         visits=None) -> None:
    """Everything a committed unit of work queued, sent once: socket and board pushes, squads'
    positions, SMS jobs, and visits that need a squad — an rq job, or `visits(ids)` run right here
    (the workers' fast path from a tiered lead to its offer). Redis away loses nothing: the rows are
    committed, and the sweeps find pending SMS and waiting visits."""
    if not box:
        return
    metrics.apply(box.counts)  # what the unit of work did, counted now that it is committed
    try:
        outbox.publish(redis, box.pushes)
        if box.squad_positions:
            pipe = redis.pipeline(transaction=False)
            for code, lon, lat, at in box.squad_positions:
                pipe.geoadd(geo_key(), (lon, lat, code))
                pipe.hset(geo_at_key(), code, at)
            pipe.execute()
    except Exception as exc:
        log.warning("push_failed", pushes=len(box.pushes), error=str(exc))
    try:
        enqueue_sms(queue, box.sms_ids(), sms_retry_intervals)
    except Exception as exc:
        log.warning("sms_enqueue_failed", messages=len(box.sms), error=str(exc))
    if box.dials:
        try:
            enqueue_dials(redis, list(box.dials))
        except Exception as exc:
            log.warning("dial_enqueue_failed", dials=len(box.dials), error=str(exc))
    if box.feedback:
        try:
            enqueue_feedback(queue, box.feedback)
        except Exception as exc:
            log.warning("feedback_enqueue_failed", sources=len(box.feedback), error=str(exc))
    if box.visits:
        try:
            if visits is not None:
                visits(list(box.visits))
            else:
                enqueue_visits(queue, list(box.visits))
        except Exception as exc:
            log.warning("visit_dispatch_deferred", visits=len(box.visits), error=str(exc))


class AfterCommit:
    """Hands committed lead ids to rq without holding up the answer. Ids that arrive while an
    enqueue is in flight go out together in the next one; under load (a flush right after the last
    one) the next flush also lingers `linger` seconds so that one job carries many leads. A lead
    after a quiet spell goes out at once: a district's 40-100 leads a day never wait for a batch.
    Urgent ids (those that may be P0) never wait for the ordinary flush: they go on the urgent queue,
    at once after a quiet spell; those that come while an urgent send is in flight go in the next
    one. Only in a flood of them (the next flush due less than `urgent_spacing` seconds after the
    last one ended) does that next flush wait out the rest of the spacing, so that a flood is a few
    dozen jobs a second, not one per group commit: each flush costs the API ~0.5 ms of CPU in Python,
    half of it on the event loop's thread, which its sending thread holds the GIL against
    (BENCHMARKS.md, "urgent flushes spaced")."""

    def __init__(self, queue: Queue, linger: float = 0.0, urgent: Queue | None = None, urgent_spacing: float = 0.0):
        self.queue, self.linger, self.urgent, self.urgent_spacing = queue, linger, urgent, urgent_spacing
        self._pending: list[int] = []
        self._task: asyncio.Task | None = None
        self._last_flush = float("-inf")  # loop time at the end of the last flush
        self._urgent_pending: list[int] = []
        self._urgent_task: asyncio.Task | None = None
        self._last_urgent = float("-inf")  # loop time at the end of the last urgent flush

    def submit(self, ids: list[int], urgent: list[int] | tuple = ()) -> None:
        if urgent and self.urgent is not None:
            self._urgent_pending.extend(urgent)
            if self._urgent_task is None or self._urgent_task.done():
                self._urgent_task = asyncio.get_running_loop().create_task(self._flush_urgent())
            taken = set(urgent)
            ids = [i for i in ids if i not in taken]
        if not ids:
            return
        self._pending.extend(ids)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._flush())

    async def _flush_urgent(self) -> None:
        """At once after a quiet spell; ids that come while a send is in flight go together in the next
        (a flood of urgent pushes costs a thread hop and a round trip per flush, not per lead), no
        sooner than `urgent_spacing` after the last flush ended."""
        loop = asyncio.get_running_loop()
        while self._urgent_pending:
            wait = self._last_urgent + self.urgent_spacing - loop.time()
            if wait > 0:  # a flood: the rest of the spacing, and everything that comes meanwhile joins
                await asyncio.sleep(wait)
            ids, self._urgent_pending = self._urgent_pending, []
            await asyncio.to_thread(self._send, self.urgent, ids, enqueue_urgent)
            self._last_urgent = loop.time()

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            if loop.time() - self._last_flush < self.linger:  # busy: let more ids join this job
                await asyncio.sleep(self.linger)
            ids, self._pending = self._pending, []
            await asyncio.to_thread(self._send, self.queue, ids, enqueue_leads)
            self._last_flush = loop.time()

    def _send(self, queue: Queue, ids: list[int], enqueue) -> None:
        """The job and the board's news of the leads, in one round trip. The board hears of new leads
        here, off the push's path: one event per flush, not per lead (a 1,000-lead batch cost 1,000
        Redis scripts and halved batch intake)."""
        try:
            outbox.publish(queue.connection, [outbox.Push(outbox.BOARD, "lead.created", {"lead_ids": ids})],
                           ahead=lambda pipe: enqueue(queue, ids, pipeline=pipe))
        except outbox.PushesFailed as exc:  # the job left: only the board hears nothing of these leads
            log.warning("board_news_failed", leads=len(ids), error=str(exc))
        except Exception as exc:  # Redis down: the leads are safe in PostgreSQL, the reconciler resends
            log.warning("enqueue_failed", leads=len(ids), urgent=queue is self.urgent, error=str(exc))

    async def drain(self) -> None:
        """On shutdown: send what is pending (best effort)."""
        if self._urgent_task is not None:
            await self._urgent_task
        if self._task is not None:
            await self._task
