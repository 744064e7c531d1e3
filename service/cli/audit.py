"""`quanzu audit`: the tamper-evident audit trail (lead_event, access_log)."""
from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from service.cli.common import console, servers
from service.core.settings import get_settings


def verify(seal_first: Annotated[bool, typer.Option("--seal/--no-seal",
                                                    help="Seal rows written since the last run first")] = False
           ) -> None:
    """Check both hash chains; name the first broken link and exit 1 when one is broken."""
    from dispatch.audit import run_verify

    urls = servers()
    try:
        reports = run_verify(urls.database_url, get_settings(), seal_first=seal_first)
    finally:
        urls.stop()
    for r in reports:
        state = "[red]BROKEN[/]" if r.broken else "[green]intact[/]"
        console.print(f"{r.table}: {state}, {r.sealed} rows sealed, {r.unsealed} waiting to be sealed")
        if r.broken:
            console.print(f"  first broken link: {escape(str(r.broken))}")
    if any(r.broken for r in reports):
        raise typer.Exit(1)
