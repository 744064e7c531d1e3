"""Loading leads from a file, and the sources' feedback URLs."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn

from service.cli.common import console, db_session, fail, servers

CHUNK = 500


def import_leads(file: Path,
                 historic: Annotated[bool, typer.Option(help="Old leads: placed and tiered for the records and "
                                                             "the KPIs, stored closed; no ladder, nothing sent")] = False,
                 actor: Annotated[str, typer.Option(help="Who the timeline names")] = "import") -> None:
    """Load leads from FILE (.jsonl in the wire format, or a platform's monthly .xlsx export); a
    rerun skips what is stored (source + source_id). Without --historic the leads go to the
    workers as pushed ones do."""
    from dispatch import flows, outbox
    from dispatch.intake import historic as loader
    from dispatch.policy import load_policy
    from dispatch.triage.service import placement_for
    from geo.store import IndexCache
    from service.core.settings import get_settings
    from workers.queues import enqueue_leads, lead_queue

    if not file.is_file():
        raise fail(f"no file {file}")
    settings = get_settings()
    urls = servers()
    stored = skipped = rejected = 0
    new_ids: list[int] = []
    try:
        policy = load_policy(settings.policy_file)
        with db_session(urls) as session:
            loaded = IndexCache().get_sync(session)
            if loaded is None and historic:
                raise fail("no district imported: run `quanzu import-district DIR` first")
            placement_of = placement_for(loaded.index, loaded.district_codes) if loaded else None
            items = list(loader.read_file(file))
            with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                          console=console) as bar:
                task = bar.add_task(f"importing {file.name}" + (" (historic)" if historic else ""), total=len(items))
                for i in range(0, len(items), CHUNK):
                    good = []
                    for n, obj in items[i:i + CHUNK]:
                        lead, flags, outcome, closed_at, errors = loader.check(obj)
                        if lead is None:
                            rejected += 1
                            if rejected <= 20:
                                bar.console.print(f"[yellow]line {n}:[/] " + escape("; ".join(
                                    f"{e.field}: {e.message}" for e in errors)))
                            continue
                        good.append((lead, flags, outcome, closed_at))
                    if historic:
                        n_new = flows.load_historic(session, good, placement_of, policy, actor)
                    else:
                        ids = loader.insert_leads(session, [(g[0], g[1]) for g in good], actor, historic=False)
                        new_ids += ids
                        n_new = len(ids)
                    session.commit()
                    outbox.take(session)  # history is not news: nothing the unit of work queued is sent
                    stored, skipped = stored + n_new, skipped + len(good) - n_new
                    bar.update(task, advance=len(items[i:i + CHUNK]))
        if new_ids:
            from service.core.redis import make_redis

            enqueue_leads(lead_queue(make_redis(urls.redis_url), settings.queue_name), new_ids)
    finally:
        urls.stop()
    console.print(f"{stored} stored, {skipped} skipped (stored already), {rejected} rejected")
    if rejected and not stored and not skipped:  # nothing in the file was a lead
        raise typer.Exit(1)


def source_feedback(source: str, url: Annotated[str, typer.Option(help="Where results are POSTed")],
                    key: Annotated[str | None, typer.Option(help="The signing key (default: the one it has, "
                                                                  "else a new one)")] = None) -> None:
    """Register (or change) a source's feedback URL (反馈); prints the signing key alone on the last line."""
    from dispatch.outcomes import feedback
    from service.core.errors import ValidationFailed

    urls = servers()
    try:
        with db_session(urls) as session:
            try:
                key, created = feedback.register(session, source, url, key)
            except ValidationFailed as exc:
                raise fail("; ".join(f"{e['field']}: {e['message']}" for e in exc.detail)) from None
            session.commit()
    finally:
        urls.stop()
    console.print(f"feedback of {source} → {url} {'registered' if created else 'updated'}; deliveries are signed "
                  f"with this key (HMAC-SHA256 of the body, header X-Quanzu-Signature):")
    print(key)
