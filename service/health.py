"""/healthz (process up), /readyz (database and Redis reachable), /metrics (Prometheus)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.responses import Response

from service.core.responses import JSON

router = APIRouter(tags=["operations"])

@router.get("/healthz", summary="The process is up. No authentication.")
async def healthz():
    return JSON({"status": "ok"})


@router.get("/readyz", summary="PostgreSQL and Redis answer. No authentication.")
async def readyz(request: Request):
    state = request.app.state
    checks: dict[str, str] = {}
    try:
        async with state.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # reported, not raised: this endpoint exists to say what is down
        checks["database"] = f"error: {exc.__class__.__name__}"
    try:
        await asyncio.wait_for(state.aredis.ping(), timeout=2)
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {exc.__class__.__name__}"
    ok = all(v == "ok" for v in checks.values())
    return JSON({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics. No authentication.")
async def metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
