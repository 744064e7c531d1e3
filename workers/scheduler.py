"""The reconciler's clock: rq's CronScheduler enqueues `reconcile` every few seconds.

Every `quanzu worker` runs one in a thread; a short Redis lock makes one of them fire per period."""
from __future__ import annotations

import threading

from redis import Redis
from rq.cron import CronScheduler

from workers.tasks import field_sweep, reconcile

LOCK = "quanzu:reconcile:lock"


def run_reconciler(redis: Redis, queue_name: str, every: int, stop: threading.Event, sweep_every: int = 5) -> None:
    cron = CronScheduler(connection=redis, name=f"quanzu-reconciler-{threading.get_native_id()}")
    cron.register(reconcile, queue_name, interval=every, result_ttl=0, job_timeout=120)
    # Field dispatch's sweep (expired offers, lost visit jobs, SMS fallbacks) on the same clock.
    cron.register(field_sweep, queue_name, interval=sweep_every, result_ttl=0, job_timeout=120)
    while not stop.is_set():
        if redis.set(LOCK, "1", nx=True, ex=max(1, every - 1)):
            cron.enqueue_jobs()
        stop.wait(every)


def start_reconciler(redis: Redis, queue_name: str, every: int, sweep_every: int = 5) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run_reconciler, args=(redis, queue_name, every, stop, sweep_every), daemon=True,
                     name="quanzu-reconciler").start()
    return stop
