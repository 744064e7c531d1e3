"""The reconciler's clock: rq's CronScheduler enqueues `reconcile` and `seal_audit` every few seconds.

Every `quanzu worker` runs one in a thread; a short Redis lock makes one of them fire per period."""
from __future__ import annotations

import threading

from redis import Redis
from rq.cron import CronScheduler

from workers.tasks import reconcile, seal_audit

LOCK = "quanzu:reconcile:lock"


def run_reconciler(redis: Redis, queue_name: str, every: int, stop: threading.Event) -> None:
    cron = CronScheduler(connection=redis, name=f"quanzu-reconciler-{threading.get_native_id()}")
    cron.register(reconcile, queue_name, interval=every, result_ttl=0, job_timeout=120)
    cron.register(seal_audit, queue_name, interval=every, result_ttl=0, job_timeout=600)
    while not stop.is_set():
        if redis.set(LOCK, "1", nx=True, ex=max(1, every - 1)):
            cron.enqueue_jobs()
        stop.wait(every)


def start_reconciler(redis: Redis, queue_name: str, every: int) -> threading.Event:
    stop = threading.Event()
    threading.Thread(target=run_reconciler, args=(redis, queue_name, every, stop), daemon=True,
                     name="quanzu-reconciler").start()
    return stop
