"""What every `quanzu` command shares: the console (stderr), a failure's exit, and the servers it
talks to (DATABASE_URL / REDIS_URL, else embedded ones)."""
from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from service.core.settings import get_settings

console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error (never re-wrapped, never read as markup) and give the exit to raise."""
    console.print(f"[red]{escape(message)}[/]")
    return typer.Exit(code)


def servers(migrate: bool = True):
    """The configured servers, else embedded ones → Urls (stop() them)."""
    from service.tools.embedded import resolve_urls

    return resolve_urls(get_settings(), migrate=migrate)


def db_session(urls):
    """A session on one connection, for a command's one unit of work."""
    from service.core.db import make_sync_engine, sync_session

    return sync_session(make_sync_engine(urls.database_url, pool_size=1))


def require_secret() -> None:
    """`serve` and `worker` sign and check tokens: a development or short SECRET_KEY ends the command
    (exit 2, one line saying why). On embedded servers (DATABASE_URL unset: a laptop, the demo) an
    unset SECRET_KEY becomes the state dir's own random key instead."""
    import os

    from service.core.settings import DEV_SECRET, local_secret, secret_problem

    settings = get_settings()
    problem = secret_problem(settings.secret_key)
    if problem is None:
        return
    if settings.database_url is None and settings.secret_key == DEV_SECRET:
        os.environ["SECRET_KEY"] = local_secret(settings.state_dir)
        get_settings.cache_clear()
        return
    raise fail(problem)


def servers_in_environment():
    """DATABASE_URL / REDIS_URL, else embedded servers started (or reused) here and named in this
    process's environment, so the API's and the worker's code read one place → Urls (stop() them)."""
    import os

    settings = get_settings()
    urls = servers()
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = urls.database_url, urls.redis_url
    # Read the settings again only when they must now name embedded servers. A fresh copy when
    # nothing changed would part get_settings() from the object the process already holds (an app
    # made with it, a test's monkeypatches), and code run here would stop seeing the same settings.
    if (urls.database_url, urls.redis_url) != (settings.database_url, settings.redis_url):
        get_settings.cache_clear()
    return urls
