"""A worker process: an rq SimpleWorker on the quanzu queue plus the reconciler's clock."""
from __future__ import annotations

from rq import SimpleWorker

from service.core.logging import configure_logging
from service.core.settings import get_settings
from workers.queues import lead_queue
from workers.scheduler import start_reconciler
from workers.tasks import ctx


def run_worker(burst: bool = False) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    queue = lead_queue(ctx.redis, settings.queue_name)
    ctx.configure_events()
    stop = start_reconciler(ctx.redis, settings.queue_name, settings.reconcile_every_seconds,
                            settings.field_sweep_every_seconds)
    try:
        SimpleWorker([queue], connection=ctx.redis).work(burst=burst, with_scheduler=False)
    finally:
        stop.set()
        ctx.urls.stop()
