"""Running quanzu: the schema migrated, the API served, a worker at work."""
from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import console, require_secret, servers, servers_in_environment


def migrate() -> None:
    """Upgrade the database schema to the newest revision (Alembic)."""
    from service.core.migrate import upgrade

    urls = servers(migrate=False)
    try:
        upgrade(urls.database_url)
        console.print("[green]database at head[/]")
    finally:
        urls.stop()


def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    require_secret()
    urls = servers_in_environment()
    try:  # No per-message deflate: it doubles memory and triples CPU for small messages (style.md).
        uvicorn.run("service.asgi:app", host=host, port=port, workers=workers, access_log=False,
                    log_config=None, proxy_headers=True, ws="websockets-sansio", ws_per_message_deflate=False)
    finally:
        urls.stop()


def worker(burst: Annotated[bool, typer.Option(help="Exit when the queue is empty")] = False,
           dial: Annotated[bool, typer.Option(help="A dial worker: the desk's SIP calls only (one call at a "
                                                   "time each: run one per line that may call at once)")] = False,
           urgent: Annotated[bool, typer.Option(help="An urgent worker: leads that may be P0 only, never behind "
                                                     "a batch (run one beside the ordinary workers)")] = False,
           ) -> None:
    """Run an rq worker (placing, tiering, escalation) and the reconciler's clock; `--dial`: a dial
    worker; `--urgent`: the urgent queue only, no clock."""
    from workers.run import run_worker

    require_secret()
    urls = servers_in_environment()
    try:
        run_worker(burst=burst, dial=dial, urgent=urgent)
    finally:
        urls.stop()
