"""The reconciler's clock: rq's CronScheduler enqueues `reconcile` and `seal_audit` every few seconds.

Every `quanzu worker` runs one in a thread; a short Redis lock makes one of them fire per period.
Redis errors (down, restarting, timing out) never stop the clock: each is logged, the clock backs
off (up to 30 s) and goes on; the first tick that reaches Redis again fires as usual."""
from __future__ import annotations

import threading

from redis import Redis
from rq.cron import CronScheduler

from service.core.logging import log
from workers.tasks import field_sweep, reconcile, seal_audit

LOCK = "quanzu:reconcile:lock"
MAX_BACKOFF = 30.0


def tick(cron: CronScheduler, redis: Redis, every: int) -> bool:
    """One period: fire if this worker holds the lock. → whether it fired."""
    if redis.set(LOCK, "1", nx=True, ex=max(1, every - 1)):
        return bool(cron.enqueue_jobs())
    return False


def run_reconciler(redis: Redis, queue_name: str, every: int, stop: threading.Event, sweep_every: int = 5) -> None:
    cron = CronScheduler(connection=redis, name=f"quanzu-reconciler-{threading.get_native_id()}")
    cron.register(reconcile, queue_name, interval=every, result_ttl=0, job_timeout=120)
    cron.register(seal_audit, queue_name, interval=every, result_ttl=0, job_timeout=600)
    # Field dispatch's sweep (expired offers, lost visit jobs, SMS fallbacks) on the same clock.
    cron.register(field_sweep, queue_name, interval=sweep_every, result_ttl=0, job_timeout=120)
    wait = float(every)
    while not stop.is_set():
        try:
            tick(cron, redis, every)
        except Exception as exc:  # Redis away or a bug in a tick: logged, and the clock goes on
            wait = min(MAX_BACKOFF, wait * 2)
            log.warning("reconciler_tick_failed", error=f"{exc.__class__.__name__}: {exc}", retry_in=wait)
        else:
            wait = float(every)
        stop.wait(wait)


def start_reconciler(redis: Redis, queue_name: str, every: int, sweep_every: int = 5) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run_reconciler, args=(redis, queue_name, every, stop, sweep_every), daemon=True,
                     name="quanzu-reconciler").start()
    return stop
