"""A worker process: an rq SimpleWorker on the quanzu queue plus the reconciler's clock.

Redis going away does not end the process: rq's worker gives up on some Redis errors (at start,
in its maintenance and heartbeats), so it is started again after a pause until Redis answers;
the reconciler's clock goes on by itself (workers.scheduler). SIGTERM / SIGINT stop it as rq does."""
from __future__ import annotations

import gc
import signal
import threading
import time

import redis
from prometheus_client import start_http_server
from rq import SimpleWorker

from dispatch.field.squads import adjacency
from dispatch.metrics import JOB_SECONDS, JOBS
from service.core.db import sync_session
from service.core.errors import count_dependency_error
from service.core.logging import configure_logging, log
from service.core.redis import make_redis
from service.core.settings import get_settings
from workers.queues import dial_queue, worker_queues
from workers.scheduler import start_reconciler
from workers.tasks import ctx

RESTART_AFTER_SECONDS = 2.0

# What a lead's job reads on every run is built at the worker's start instead of by its first job, and
# then everything alive is kept out of the collector's passes (gc.freeze), as the API does: a worker
# holds ~200,000 objects from its imports and the beat index, and one full pass over them held an
# urgent lead ~115 ms (BENCHMARKS.md, "the morning of 12-07"). `index`: the beat index last frozen.
_heap = {"settled": False, "index": None}


def settle() -> None:
    """At a lead worker's start: the policy, the squads' settings, the beat index and the beats'
    neighbours built, then frozen. PostgreSQL not there yet, or no district imported: the first job
    builds what is missing, and `refreeze` freezes it after that job."""
    try:
        _ = ctx.policy, ctx.field  # cached properties: built here
        with sync_session(ctx.engine) as session:
            ctx.index.get_sync(session)
            adjacency(session)
    except Exception as exc:
        log.warning("worker_warmup_failed", error=f"{exc.__class__.__name__}: {exc}")
    _heap["settled"] = True
    _freeze()


def refreeze() -> None:
    """After a job of a settled worker: a new beat index (an import changed a district, or the first
    district came) is frozen too, once per index."""
    if _heap["settled"] and ctx.index.current is not _heap["index"]:
        _freeze()


def _freeze() -> None:
    gc.collect()
    gc.freeze()
    _heap["index"] = ctx.index.current


class Worker(SimpleWorker):
    """rq's SimpleWorker whose command channel (rq's `send_shutdown_command` and the like) wakes every
    second: rq 3.0 subscribes with `sleep_time=60`, and since redis-py 8.2 `PubSubWorkerThread.stop()`
    joins that thread without a timeout, so a worker told to stop (SIGTERM, the end of a burst) hung
    for up to 60 s waiting for its listener to wake."""

    def subscribe(self) -> None:
        self.log.info("Worker %s: subscribing to channel %s", self.name, self.pubsub_channel_name)
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(sleep_time=1, daemon=True,
                                                       exception_handler=self._pubsub_exception_handler)

    def perform_job(self, job, queue, execution) -> bool:
        """rq's, counted: jobs by task and result, and their run time (dispatch.metrics)."""
        task = _task_name(job)
        started = time.perf_counter()
        ok = super().perform_job(job, queue, execution)
        JOB_SECONDS.labels(task).observe(time.perf_counter() - started)
        JOBS.labels(task, "ok" if ok else "failed").inc()
        refreeze()
        return ok

    def handle_exception(self, job, *exc_info):
        if exc_info and exc_info[1] is not None:  # a failed job: was it PostgreSQL or Redis?
            count_dependency_error(exc_info[1], "worker")
        return super().handle_exception(job, *exc_info)


def _task_name(job) -> str:
    try:
        return job.func_name.rsplit(".", 1)[-1]
    except Exception:  # a job that cannot be read (rq's DeserializationError)
        return "unknown"


def serve_metrics(port: int | None) -> None:
    """This worker's metrics on http://0.0.0.0:PORT/metrics (a thread of its own), when a port is set.
    A port already taken (two workers on one host with one METRICS_PORT) costs the metrics, not the work."""
    if not port:
        return
    try:
        start_http_server(port)
    except OSError as exc:
        log.warning("metrics_port_unavailable", port=port, error=str(exc))
    else:
        log.info("metrics_serving", port=port)


def run_worker(burst: bool = False, dial: bool = False, urgent: bool = False) -> None:
    """`dial`: a dial worker (the desk's SIP calls, each holding its worker for the call) — the
    dial queue only; the clock stays with the ordinary workers. `urgent`: the urgent queue only
    (leads that may be P0), so that one never waits for a batch another job is working through;
    ordinary workers take the urgent queue first too."""
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_json)
    serve_metrics(settings.metrics_port)
    if dial:
        Worker([dial_queue(ctx.redis)], connection=ctx.redis).work(burst=burst, with_scheduler=False)
        return
    queues = worker_queues(ctx.redis, urgent_only=urgent)
    settle()
    # The clock has a client of its own: rq raises the socket timeout of the worker's client to
    # outlast its blocking dequeue, and the clock must not wait that long on a hung Redis.
    clock_redis = make_redis(ctx.urls.redis_url, settings.redis_connect_timeout_seconds,
                             settings.redis_socket_timeout_seconds)
    stop = threading.Event() if urgent else start_reconciler(  # the urgent worker keeps no clock: nothing else
        clock_redis, settings.queue_name, settings.reconcile_every_seconds, settings.field_sweep_every_seconds)
    stopping = threading.Event()
    try:
        while True:
            worker = None
            try:  # rq's worker talks to Redis as soon as it is made: a Redis still down fails here too
                worker = Worker(queues, connection=ctx.redis)
                worker.work(burst=burst, with_scheduler=False)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
                count_dependency_error(exc, "worker")
                log.warning("worker_redis_unavailable", error=f"{exc.__class__.__name__}: {exc}")
            if burst or (worker is not None and worker._shutdown_requested_date is not None):  # rq's record of SIGTERM
                break
            for signum in (signal.SIGTERM, signal.SIGINT):  # between two rq workers, ours decide
                signal.signal(signum, lambda *_: stopping.set())
            if stopping.wait(RESTART_AFTER_SECONDS):
                break
            log.warning("worker_restarting")
    finally:
        stop.set()
        pass  # the servers are the caller's (the CLI stops any it started)
