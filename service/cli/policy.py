"""`quanzu policy`: check a tier policy file, or replay one over stored leads."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from service.cli.common import console, db_session, fail, servers


def _load(file: Path):
    """The policy in `file`; a bad one names the bad key (exit 2)."""
    from dispatch.policy import load_policy

    try:
        return load_policy(file)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None


def check_policy(file: Path) -> None:
    """Validate a policy file; a bad one names the bad key (exit 2)."""
    policy = _load(file)
    console.print(f"[green]{escape(str(file))}: valid[/] (version {policy.version}, {len(policy.rules)} rules)")


def replay_policy(policy: Annotated[Path, typer.Option(help="The candidate policy file")],
                  since: Annotated[str | None, typer.Option(help="ISO 8601: leads received from")] = None,
                  until: Annotated[str | None, typer.Option(help="ISO 8601: leads received before")] = None) -> None:
    """How stored leads would be tiered under a candidate policy (nothing written); JSON on stdout."""
    import json
    from datetime import datetime

    from dispatch.triage.replay import replay, replay_query
    from service.core.clock import CENTER_TZ

    candidate = _load(policy)

    def when(text: str | None, name: str) -> datetime | None:
        if text is None:
            return None
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            raise fail(f"--{name}: {text!r} is not an ISO 8601 time") from None
        return t if t.tzinfo else t.replace(tzinfo=CENTER_TZ)

    window = when(since, "since"), when(until, "until")
    urls = servers()
    try:
        with db_session(urls) as session:
            result = replay(session.execute(replay_query(*window)).all(), candidate)
    finally:
        urls.stop()
    print(json.dumps(result, ensure_ascii=False, indent=2))
