"""The floor for bench/ingest.py: a bare FastAPI endpoint that returns the pushed body as is.

    uvicorn bench.echo_app:app --workers 1 --no-access-log --log-level warning

No validation, no database, no middleware: what any FastAPI endpoint costs before it does work.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.responses import Response

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/json")
