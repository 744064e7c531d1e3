"""The `quanzu` command. Same environment as the API: DATABASE_URL, REDIS_URL (unset: embedded)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn

from service.core.settings import find_sample_district, get_settings

app = typer.Typer(help="quanzu 劝阻: warning-and-dissuasion dispatch.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error (never re-wrapped, never read as markup) and give the exit to raise."""
    console.print(f"[red]{escape(message)}[/]")
    return typer.Exit(code)


def _urls(migrate: bool = True):
    from service.core.runtime import resolve_urls

    return resolve_urls(get_settings(), migrate=migrate)


def _session(urls):
    from service.core.db import make_sync_engine, sync_session

    return sync_session(make_sync_engine(urls.database_url, pool_size=1))


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the newest revision (Alembic)."""
    from service.core.migrate import upgrade

    urls = _urls(migrate=False)
    try:
        upgrade(urls.database_url)
        console.print("[green]database at head[/]")
    finally:
        urls.stop()


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    uvicorn.run("service.asgi:app", host=host, port=port, workers=workers, access_log=False,
                log_config=None, proxy_headers=True)


@app.command()
def worker(burst: Annotated[bool, typer.Option(help="Exit when the queue is empty")] = False) -> None:
    """Run an rq worker (placing, tiering, escalation) and the reconciler's clock."""
    from workers.run import run_worker

    run_worker(burst=burst)


@app.command("import-district")
def import_district(directory: Path) -> None:
    """Load or update the district (streets, beats, stations, squads) from DIR."""
    from dispatch.district import import_district as do_import
    from geo.district import DistrictError, load_district_dir

    try:
        data = load_district_dir(directory)
    except DistrictError as exc:
        raise fail(str(exc)) from None
    urls = _urls()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=console) as bar:
            total = 1 + len(data.streets) + len(data.stations) + len(data.beats) + len(data.teams)
            task = bar.add_task(f"importing {data.name}", total=total)
            with _session(urls) as session:
                summary = do_import(session, data, lambda what, n: bar.update(task, advance=n,
                                                                               description=f"importing {what}"))
                session.commit()
        console.print(summary)
    finally:
        urls.stop()


@app.command("create-user")
def create_user(username: str, role: Annotated[str, typer.Option()], password: Annotated[str, typer.Option()],
                team: Annotated[str | None, typer.Option()] = None) -> None:
    """Create or update a user (admin, commander, operator, police, auxiliary, grid_worker)."""
    from sqlalchemy import select

    from dispatch.models import Team
    from service.core.auth import SQUAD_ROLES, Role, hash_password
    from service.core.models import User

    if role not in Role.__members__:
        raise fail(f"unknown role {role!r}; one of {', '.join(Role)}")
    if role in SQUAD_ROLES and not team:
        raise fail(f"a {role} belongs to a squad: give --team TEAM_CODE")
    urls = _urls()
    try:
        with _session(urls) as session:
            if team and session.get(Team, team) is None:
                raise fail(f"no team {team!r}: import the district first")
            user = session.execute(select(User).where(User.username == username)).scalar()
            if user is None:
                user = User(username=username, password_hash="", role=role)
                session.add(user)
            user.password_hash, user.role, user.team_code, user.active = hash_password(password), role, team, True
            session.commit()
        console.print(f"user {username} ({role}{', ' + team if team else ''}) ready")
    finally:
        urls.stop()


@app.command("create-api-key")
def create_api_key(name: Annotated[str, typer.Option()]) -> None:
    """Create an API key for an upstream source; the key is printed once, alone on the last line."""
    from sqlalchemy.exc import IntegrityError

    from service.core.auth import hash_api_key, new_api_key
    from service.core.models import ApiKey

    key = new_api_key()
    urls = _urls()
    try:
        with _session(urls) as session:
            session.add(ApiKey(name=name, key_hash=hash_api_key(key), prefix=key[:8]))
            try:
                session.commit()
            except IntegrityError:
                raise fail(f"an API key named {name!r} exists already") from None
    finally:
        urls.stop()
    console.print(f"API key for {name} (store it now; only its hash is kept):")
    print(key)


@app.command()
def demo(port: int = 8000, district: Annotated[Path | None, typer.Option(help="District to import when none is loaded "
                                                                   "(default: the shared sample)")] = None) -> None:
    """Start everything on embedded defaults: PostgreSQL, Redis, the API and a worker. Ctrl-C stops all."""
    from sqlalchemy import select

    from geo.models import District
    from service.core.models import User

    urls = _urls()
    env = {**os.environ, "DATABASE_URL": urls.database_url, "REDIS_URL": urls.redis_url}
    children: list[subprocess.Popen] = []
    try:
        with _session(urls) as session:
            has_district = session.execute(select(District.code)).first() is not None
            has_admin = session.execute(select(User.id).where(User.username == "admin")).first() is not None
        quanzu = [sys.executable, "-m", "service.cli"]
        if not has_district:
            district = district or find_sample_district()
            if district is None:
                raise fail("no district loaded and no sample found: run `quanzu demo --district DIR`")
            subprocess.run([*quanzu, "import-district", str(district)], env=env, check=True)
        if not has_admin:
            subprocess.run([*quanzu, "create-user", "admin", "--role", "admin", "--password", "admin"],
                           env=env, check=True)
        # Own sessions: Ctrl-C reaches this process only, which stops the children in order.
        children.append(subprocess.Popen([*quanzu, "serve", "--port", str(port)], env=env,
                                         start_new_session=True))
        children.append(subprocess.Popen([*quanzu, "worker"], env=env, start_new_session=True))
        console.print(f"\n[bold green]quanzu is up:[/] http://127.0.0.1:{port}/docs   "
                      f"(login admin / admin)   Ctrl-C stops everything\n")
        while all(c.poll() is None for c in children):
            time.sleep(0.5)
        console.print("[red]a process stopped; shutting down[/]")
    except KeyboardInterrupt:
        pass
    finally:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(timeout=10)
            except subprocess.TimeoutExpired:
                c.kill()
        urls.stop()


@app.command()
def simulate(
    url: Annotated[str | None, typer.Option(help="Live: the server to drive, e.g. http://127.0.0.1:8000")] = None,
    api_key: Annotated[str | None, typer.Option(help="Live: a source API key (pushes leads and cases)")] = None,
    username: Annotated[str | None, typer.Option(help="Live: an operator who posts calls and callbacks")] = None,
    password: Annotated[str | None, typer.Option()] = None,
    leads: Annotated[int, typer.Option(help="How many leads (live: pushes; bulk: rows)")] = 200,
    speed: Annotated[float, typer.Option(help="Live: simulated seconds per wall second")] = 60.0,
    seed: Annotated[int, typer.Option()] = 7,
    bulk: Annotated[bool, typer.Option(help="Write straight into DATABASE_URL with COPY (benchmarks)")] = False,
) -> None:
    """Generate realistic leads, call results, callbacks and cases: live against a server over HTTP,
    or bulk-loaded into PostgreSQL."""
    import asyncio

    from dispatch import simulate as sim

    if bulk:
        import psycopg

        from service.core.settings import plain_url

        urls = _urls()
        with _session(urls) as session:
            area = sim.Area.load(session)
        with psycopg.connect(plain_url(urls.database_url)) as conn:
            report = sim.bulk_load(conn, area, leads, seed=seed,
                                   progress=lambda n: console.print(f"{n:,} leads", highlight=False))
            conn.commit()
        console.print(f"bulk-loaded {report.leads:,} leads in {report.seconds:.1f} s: {dict(report.rows)}")
        urls.stop()
        return
    if not url or not api_key:
        raise fail("live mode needs --url and --api-key (or use --bulk)")

    async def live():
        import httpx

        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            token = None
            if username:
                r = await client.post("/api/v1/auth/token", data={"username": username, "password": password or ""})
                if r.status_code != 200:
                    raise fail(f"login failed: {r.status_code} {r.text}")
                token = r.json()["access_token"]
            r = await client.get("/api/v1/geo/beats", headers={"X-API-Key": api_key} if not token else
                                 {"Authorization": f"Bearer {token}"})
            if r.status_code != 200:
                raise fail(f"cannot read the district's beats: {r.status_code} {r.text}")
            area = sim.Area.from_beats_geojson(r.json())
            return await sim.run_live(client, sim.Generator(area, seed), leads=leads, speed=speed, api_key=api_key,
                                      token=token)

    report = asyncio.run(live())
    console.print(f"pushed {report.leads} leads, {report.cases} cases, {report.calls} calls, "
                  f"{report.callbacks} callbacks; answers: {dict(report.answers)}")


@app.command()
def report(month: Annotated[str, typer.Option(help="YYYY-MM (center time)")],
           out: Annotated[Path | None, typer.Option(help="Where to write (default quanzu-YYYY-MM.xlsx)")] = None) -> None:
    """Write the monthly report (月通报) as an .xlsx workbook, the same file GET /reports/monthly gives."""
    import asyncio
    import re

    from sqlalchemy.ext.asyncio import AsyncSession

    from dispatch import report as monthly
    from service.core import clock
    from service.core.db import make_async_engine

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise fail("--month must be YYYY-MM")
    urls = _urls()

    async def build() -> bytes:
        engine = make_async_engine(urls.database_url, 2)
        try:
            async with AsyncSession(engine) as session:
                return monthly.to_xlsx(await monthly.build_monthly(session, month, clock.now()))
        finally:
            await engine.dispose()

    target = out or Path(f"quanzu-{month}.xlsx")
    target.write_bytes(asyncio.run(build()))
    urls.stop()
    print(target)


if __name__ == "__main__":
    app()
