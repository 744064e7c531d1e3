"""The workers' clock: rq's CronScheduler enqueues the periodic jobs — the reconciler (leads left
`received`), the deadline sweep (due `lead_deadline` rows) and the SMS sweep (pending `sms_message`
rows whose job was lost) — and rq's own scheduler moves retries whose backoff has passed back to
the queue.

Every `quanzu worker` runs one in a thread; a short Redis lock makes one of them fire per period.
Redis holds no timer of ours that PostgreSQL does not: a flush loses only jobs, which the sweeps
find again from the rows."""
from __future__ import annotations

import threading

from redis import Redis
from rq.cron import CronScheduler
from rq.scheduler import RQScheduler

from service.core.logging import log
from service.core.settings import get_settings
from workers.tasks import reconcile, sweep_deadlines, sweep_sms

LOCK = "quanzu:reconcile:lock"


def run_reconciler(redis: Redis, queue_name: str, every: int, stop: threading.Event) -> None:
    settings = get_settings()
    cron = CronScheduler(connection=redis, name=f"quanzu-reconciler-{threading.get_native_id()}")
    cron.register(reconcile, queue_name, interval=every, result_ttl=0, job_timeout=120)
    cron.register(sweep_deadlines, queue_name, interval=settings.deadline_sweep_every_seconds, result_ttl=0,
                  job_timeout=600)
    cron.register(sweep_sms, queue_name, interval=max(every, settings.deadline_sweep_every_seconds),
                  result_ttl=0, job_timeout=120)
    retries = RQScheduler([queue_name], connection=redis)
    tick = max(1, min(every, settings.deadline_sweep_every_seconds))
    while not stop.is_set():
        try:
            if redis.set(LOCK, "1", nx=True, ex=max(1, tick - 1) if tick > 1 else 1):
                cron.enqueue_jobs()
            if retries.acquire_locks():  # rq Retry with backoff: due retries back onto the queue
                retries.enqueue_scheduled_jobs()
        except Exception as exc:  # Redis restarting: try again next tick
            log.warning("scheduler_tick_failed", error=str(exc))
        stop.wait(tick)


def start_reconciler(redis: Redis, queue_name: str, every: int) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run_reconciler, args=(redis, queue_name, every, stop), daemon=True,
                     name="quanzu-reconciler").start()
    return stop
