"""/healthz (process up), /readyz (database and Redis reachable), /metrics (Prometheus)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text
from starlette.responses import PlainTextResponse, Response

from service.core.responses import JSON

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


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready, "description": "Something is down"}},
            summary="PostgreSQL and Redis answer. No authentication.")
async def readyz(request: Request):
    state = request.app.state
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
    ok = all(v == "ok" for v in checks.values())
    return JSON({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


@router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics. No authentication.",
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text format"}})
async def metrics():
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
