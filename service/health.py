"""/healthz (process up), /readyz (database and Redis reachable), /metrics (Prometheus).

/metrics serves this process's counters (dispatch.metrics, service.core.metrics) and a few gauges
read at scrape time from PostgreSQL and Redis, cached a few seconds per process: whether the
dependencies answer (what /readyz says), rq's queue depths, failed jobs and live workers, and the
pending deadlines already past due, by kind. Every API process reports the same shared figures: read
them with max(), not sum()."""
from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry
from pydantic import BaseModel, Field
from rq import Queue
from rq.registry import FailedJobRegistry
from rq.worker_registration import get_keys
from sqlalchemy import text
from starlette.responses import PlainTextResponse, Response

from service.core import clock
from service.core.responses import JSON
from workers.queues import rq_queue_name, urgent_queue_name

SNAPSHOT_SECONDS = 5.0  # scrape-time gauges are read at most this often per process
router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: str = Field(examples=["ok"])


class Ready(BaseModel):
    status: str = Field(description="ok | unavailable")
    database: str = Field(description="ok, or error: <kind>")
    redis: str


@router.get("/healthz", response_model=Health, summary="The process is up. No authentication.")
async def healthz():
    return JSON({"status": "ok"})


async def check_dependencies(state) -> dict[str, str]:
    """{"database": "ok" | "error: <kind>", "redis": ...}: each answers a ping within 2 s."""
    checks: dict[str, str] = {}
    try:
        async def ping() -> None:
            async with state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        await asyncio.wait_for(ping(), timeout=2)
        checks["database"] = "ok"
    except Exception as exc:  # reported, not raised: this endpoint exists to say what is down
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        await asyncio.wait_for(state.aredis.ping(), timeout=2)
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    return checks


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready, "description": "Something is down"}},
            summary="PostgreSQL and Redis answer. No authentication.")
async def readyz(request: Request):
    checks = await check_dependencies(request.app.state)
    ok = all(v == "ok" for v in checks.values())
    return JSON({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


# The pending deadlines already past due, by name (the partial index ix_lead_deadline_due serves it);
# "now" is quanzu's clock, the one the sweep decides by.
_OVERDUE = text("SELECT name, count(*), extract(epoch FROM CAST(:now AS timestamptz) - min(due_at)) "
                "FROM lead_deadline WHERE state = 'pending' AND due_at < :now GROUP BY name")


def _rq_figures(redis, queue_names: list[str]) -> list[tuple[str, int, int, int]]:
    """(queue, jobs waiting, jobs failed and kept, live workers) per queue. A worker counts while its
    key lives (rq renews it with each heartbeat); rq leaves dead ones in the queue's set."""
    out = []
    for name in queue_names:  # labelled QUEUE_NAME / DIAL_QUEUE_NAME; rq's queue is in the deployment's namespace
        queue = Queue(rq_queue_name(name), connection=redis)
        keys = sorted(get_keys(queue))
        live = sum(redis.exists(*keys[i:i + 500]) for i in range(0, len(keys), 500))
        out.append((name, queue.count, FailedJobRegistry(queue=queue).count, live))
    return out


async def _read_shared(state) -> list:
    settings = state.settings
    checks = await check_dependencies(state)
    ready = GaugeMetricFamily("quanzu_ready", "PostgreSQL and Redis answer this API process (1) or not (0), "
                              "as /readyz says", labels=["dependency"])
    for dependency, answer in checks.items():
        ready.add_metric([dependency], 1.0 if answer == "ok" else 0.0)
    families = [ready]
    if checks["database"] == "ok":
        overdue = GaugeMetricFamily("quanzu_deadlines_overdue", "Pending deadlines past due, by name (sign, "
                                    "first_call, visit, on_scene, callback...)", labels=["kind"])
        oldest = GaugeMetricFamily("quanzu_deadline_overdue_oldest_seconds",
                                   "How long the oldest pending deadline of each name is past due", labels=["kind"])
        try:
            async with state.engine.connect() as conn:
                rows = (await asyncio.wait_for(conn.execute(_OVERDUE, {"now": clock.now()}), timeout=2)).all()
        except Exception:
            rows = None
        if rows is not None:
            for name, n, age in rows:
                overdue.add_metric([name], float(n))
                oldest.add_metric([name], float(age))
            families += [overdue, oldest]
    if checks["redis"] == "ok":
        try:
            figures = await asyncio.wait_for(asyncio.to_thread(
                _rq_figures, state.redis, [settings.queue_name, urgent_queue_name(), settings.dial_queue_name]), timeout=3)
        except Exception:
            figures = None
        if figures is not None:
            depth = GaugeMetricFamily("quanzu_rq_queue_depth", "Jobs waiting in each rq queue", labels=["queue"])
            failed = GaugeMetricFamily("quanzu_rq_jobs_failed", "Failed jobs kept in each rq queue's failed "
                                       "registry (7 days)", labels=["queue"])
            workers = GaugeMetricFamily("quanzu_rq_workers", "rq workers listening on each queue whose "
                                        "heartbeat is current", labels=["queue"])
            for name, waiting, n_failed, live in figures:
                depth.add_metric([name], float(waiting))
                failed.add_metric([name], float(n_failed))
                workers.add_metric([name], float(live))
            families += [depth, failed, workers]
    return families


class _Shared(Collector):
    def __init__(self, families: list):
        self.families = families

    def collect(self):
        return iter(self.families)


async def shared_figures(state) -> bytes:
    """The scrape-time gauges, in the text format; read again once SNAPSHOT_SECONDS have passed."""
    cached = getattr(state, "metrics_snapshot", None)
    if cached is None or time.monotonic() - cached[0] > SNAPSHOT_SECONDS:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Shared(await _read_shared(state)))
        cached = state.metrics_snapshot = (time.monotonic(), generate_latest(registry))
    return cached[1]


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics. No authentication.",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
async def metrics(request: Request):
    return Response(generate_latest(REGISTRY) + await shared_figures(request.app.state), media_type=CONTENT_TYPE_LATEST)
