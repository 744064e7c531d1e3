"""The workers' clock: rq's CronScheduler enqueues the periodic jobs — the reconciler (leads left
`received`), the audit sealer, the deadline sweep (due `lead_deadline` rows), the SMS sweep
(pending `sms_message` rows whose job was lost), the feedback sweep (deliveries due) and field dispatch's sweep (expired offers, lost
visit jobs, SMS fallbacks) — and rq's own scheduler moves retries whose backoff has passed back to
the queue.

Every `quanzu worker` runs one in a thread; a short Redis lock makes one of them fire per period.
Redis holds no timer of ours that PostgreSQL does not: a flush loses only jobs, which the sweeps
find again from the rows. Redis errors (down, restarting, timing out) never stop the clock: each is
logged, the clock backs off (up to 30 s) and goes on; the first tick that reaches Redis again fires
as usual."""
from __future__ import annotations

import threading

from redis import Redis
from rq.cron import CronScheduler
from rq.scheduler import RQScheduler

from dispatch.ladder.gateways import gateway_kind
from dispatch.metrics import CLOCK_TICK
from service.core.errors import count_dependency_error
from service.core.logging import log
from service.core.redis import key
from service.core.settings import get_settings
from workers.queues import rq_queue_name
from workers.tasks import (
    field_sweep,
    poll_sms_receipts,
    reconcile,
    seal_audit,
    sweep_deadlines,
    sweep_dials,
    sweep_feedback,
    sweep_sms,
)

MAX_BACKOFF = 30.0


def clock_lock() -> str:
    """The short lock that lets one worker's clock fire per period (in the deployment's namespace)."""
    return key("reconcile:lock")


def tick(cron: CronScheduler, retries: RQScheduler, redis: Redis, period: int) -> bool:
    """One period: fire the due periodic jobs if this worker holds the lock, and move due retries
    back onto the queue. → whether it fired."""
    fired = False
    if redis.set(clock_lock(), "1", nx=True, ex=max(1, period - 1)):
        fired = bool(cron.enqueue_jobs())
        CLOCK_TICK.set_to_current_time()  # this worker holds the clock this period
    if retries.acquire_locks():  # rq Retry with backoff: due retries back onto the queue
        retries.enqueue_scheduled_jobs()
    return fired


def run_reconciler(redis: Redis, queue_name: str, every: int, stop: threading.Event, sweep_every: int = 5) -> None:
    settings = get_settings()
    queue_name = rq_queue_name(queue_name)
    cron = CronScheduler(connection=redis, name=key(f"reconciler-{threading.get_native_id()}"))
    cron.register(reconcile, queue_name, interval=every, result_ttl=0, job_timeout=120)
    cron.register(seal_audit, queue_name, interval=every, result_ttl=0, job_timeout=600)
    cron.register(sweep_deadlines, queue_name, interval=settings.deadline_sweep_every_seconds, result_ttl=0,
                  job_timeout=600)
    cron.register(sweep_sms, queue_name, interval=max(every, settings.deadline_sweep_every_seconds),
                  result_ttl=0, job_timeout=120)
    cron.register(field_sweep, queue_name, interval=sweep_every, result_ttl=0, job_timeout=120)
    cron.register(sweep_feedback, queue_name, interval=settings.feedback_sweep_every_seconds, result_ttl=0,
                  job_timeout=600)
    cron.register(sweep_dials, queue_name, interval=max(every, 15), result_ttl=0, job_timeout=120)
    if gateway_kind(settings) == "aliyun":  # its receipts are asked for (QuerySendDetails), not called back
        cron.register(poll_sms_receipts, queue_name, interval=settings.aliyun_receipts_every_seconds, result_ttl=0,
                      job_timeout=300)
    retries = RQScheduler([queue_name], connection=redis)
    period = max(1, min(every, settings.deadline_sweep_every_seconds, sweep_every))
    wait = float(period)
    while not stop.is_set():
        try:
            tick(cron, retries, redis, period)
        except Exception as exc:  # Redis away or a bug in a tick: logged, and the clock goes on
            count_dependency_error(exc, "clock")
            wait = min(MAX_BACKOFF, wait * 2)
            log.warning("reconciler_tick_failed", error=f"{exc.__class__.__name__}: {exc}", retry_in=wait)
        else:
            wait = float(period)
        stop.wait(wait)


def start_reconciler(redis: Redis, queue_name: str, every: int, sweep_every: int = 5) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run_reconciler, args=(redis, queue_name, every, stop, sweep_every), daemon=True,
                     name="quanzu-reconciler").start()
    return stop
