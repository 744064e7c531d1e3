"""`quanzu audit`: the tamper-evident audit trail (lead_event, access_log); `quanzu purge`: retention."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from service.cli.common import console, db_session, servers
from service.core.settings import get_settings


def verify(seal_first: Annotated[bool, typer.Option("--seal/--no-seal",
                                                    help="Seal rows written since the last run first")] = False
           ) -> None:
    """Check both hash chains and the rows the KPIs count against them; name the first broken link and
    exit 1 when one is broken."""
    from dispatch.audit import run_verify

    urls = servers()
    try:
        reports = run_verify(urls.database_url, get_settings(), seal_first=seal_first)
    finally:
        urls.stop()
    for r in reports:
        state = "[red]BROKEN[/]" if r.broken else "[green]intact[/]"
        if r.table.endswith(" rows"):
            console.print(f"{r.table}: {state}, {r.sealed} agree with their sealed events")
        else:
            console.print(f"{r.table}: {state}, {r.sealed} rows sealed, {r.unsealed} waiting to be sealed")
        if r.broken:
            console.print(f"  first broken link: {escape(str(r.broken))}")
    if any(r.broken for r in reports):
        raise typer.Exit(1)


def purge(dry_run: Annotated[bool, typer.Option("--dry-run", help="Count what is due; change nothing")] = False,
          policy_file: Annotated[Path | None, typer.Option("--policy", help="Policy file (default: the packaged one)"
                                                         )] = None) -> None:
    """Blank the personal data kept longer than the policy's retention periods (PIPL), in batches; each lead
    purged gets a timeline event, so the audit chain records it and still verifies."""
    from dispatch.policy import load_policy
    from dispatch.retention import purge as purge_batch
    from service.core import clock

    policy = load_policy(policy_file)
    urls = servers()
    leads = cases = 0
    try:
        while True:
            with db_session(urls) as session:
                done = purge_batch(session, clock.now(), policy.retention.leads, policy.retention.cases,
                                   dry_run=dry_run)
                session.commit()
            leads, cases = leads + len(done.leads), cases + len(done.cases)
            if dry_run or not (done.leads or done.cases):
                break
    finally:
        urls.stop()
    verb = "due" if dry_run else "purged"
    console.print(f"{verb}: {leads} leads (closed over {policy.retention.leads.days} days ago), "
                  f"{cases} cases (reported over {policy.retention.cases.days} days ago)")
