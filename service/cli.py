"""The `quanzu` command. Same environment as the API: DATABASE_URL, REDIS_URL (unset: embedded)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn

from service.core.settings import get_settings

app = typer.Typer(help="quanzu 劝阻: warning-and-dissuasion dispatch.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print an error (never re-wrapped, never read as markup) and give the exit to raise."""
    console.print(f"[red]{escape(message)}[/]")
    return typer.Exit(code)


def _urls(migrate: bool = True):
    from service.tools.embedded import resolve_urls

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


def _servers_in_environment():
    """DATABASE_URL / REDIS_URL, else embedded servers started (or reused) here and named in this
    process's environment, so the API's and the worker's code read one place → Urls (stop() them)."""
    import os

    urls = _urls()
    os.environ["DATABASE_URL"], os.environ["REDIS_URL"] = urls.database_url, urls.redis_url
    get_settings.cache_clear()
    return urls


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, workers: int = 1) -> None:
    """Run the HTTP API (uvicorn)."""
    import uvicorn

    urls = _servers_in_environment()
    try:  # No per-message deflate: it doubles memory and triples CPU for small messages (style.md).
        uvicorn.run("service.asgi:app", host=host, port=port, workers=workers, access_log=False,
                    log_config=None, proxy_headers=True, ws="websockets", ws_per_message_deflate=False)
    finally:
        urls.stop()


@app.command()
def worker(burst: Annotated[bool, typer.Option(help="Exit when the queue is empty")] = False) -> None:
    """Run an rq worker (placing, tiering, escalation) and the reconciler's clock."""
    from workers.run import run_worker

    urls = _servers_in_environment()
    try:
        run_worker(burst=burst)
    finally:
        urls.stop()


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


policy_app = typer.Typer(help="Check a tier policy file, or replay one over stored leads.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Validate a policy file; a bad one names the bad key (exit 2)."""
    from dispatch.policy import load_policy

    try:
        policy = load_policy(file)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None
    console.print(f"[green]{escape(str(file))}: valid[/] (version {policy.version}, {len(policy.rules)} rules)")


@policy_app.command("replay")
def policy_replay(policy: Annotated[Path, typer.Option(help="The candidate policy file")],
                  since: Annotated[str | None, typer.Option(help="ISO 8601: leads received from")] = None,
                  until: Annotated[str | None, typer.Option(help="ISO 8601: leads received before")] = None) -> None:
    """How stored leads would be tiered under a candidate policy (nothing written); JSON on stdout."""
    import json
    from datetime import datetime

    from dispatch.policy import load_policy
    from dispatch.triage.replay import replay, replay_query
    from service.core.clock import CENTER_TZ

    try:
        candidate = load_policy(policy)
    except (OSError, ValueError) as exc:
        raise fail(str(exc)) from None

    def when(text: str | None, name: str) -> datetime | None:
        if text is None:
            return None
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            raise fail(f"--{name}: {text!r} is not an ISO 8601 time") from None
        return t if t.tzinfo else t.replace(tzinfo=CENTER_TZ)

    window = when(since, "since"), when(until, "until")
    urls = _urls()
    try:
        with _session(urls) as session:
            result = replay(session.execute(replay_query(*window)).all(), candidate)
    finally:
        urls.stop()
    print(json.dumps(result, ensure_ascii=False, indent=2))


@app.command("field-sim")
def field_sim(url: Annotated[str, typer.Option(help="The API's base URL")] = "http://127.0.0.1:8000",
              squads: Annotated[int, typer.Option(help="How many squads (0 = all imported)")] = 0,
              team: Annotated[list[str] | None, typer.Option(help="Only these team codes (repeatable)")] = None,
              accept: Annotated[float, typer.Option(help="Probability of accepting an offer")] = 0.9,
              decline: Annotated[float, typer.Option(help="Probability of declining (the rest expire)")] = 0.1,
              speed_kmh: Annotated[float, typer.Option(help="Travel speed to the person")] = 30.0,
              visit_seconds: Annotated[float, typer.Option(help="Time on scene before completing")] = 20.0,
              duration: Annotated[float, typer.Option(help="Seconds to run (0 = until Ctrl-C)")] = 0.0,
              create_users: Annotated[bool, typer.Option(help="Create a login for every member of the squads")] = False,
              password: Annotated[str, typer.Option(help="The members' password")] = "field-sim",
              seed: Annotated[int | None, typer.Option(help="Random seed")] = None) -> None:
    """A reference field client: squads connect, move, accept or decline offers, arrive and complete."""
    import asyncio

    from service.tools.fieldsim import SimConfig, ensure_member_users, run_sim, squads_from

    if not (0 <= accept <= 1 and 0 <= decline <= 1 and accept + decline <= 1):
        raise fail("--accept and --decline are probabilities that add up to at most 1")
    urls = _urls()
    try:
        with _session(urls) as session:
            chosen = squads_from(session, team, squads or None)
            if not chosen:
                raise fail("no squads: import the district first (quanzu import-district DIR)")
            if create_users:
                ensure_member_users(session, [c for c, _lo, _la in chosen], password)
                session.commit()
    finally:
        urls.stop()
    console.print(f"field-sim: {len(chosen)} squads against {url}")
    cfg = SimConfig(url, password, accept, decline, speed_kmh, visit_seconds, seed=seed)
    try:
        clients = asyncio.run(run_sim(cfg, chosen, duration or None))
    except KeyboardInterrupt:
        return
    totals: dict[str, int] = {}
    for c in clients:
        for k, v in c.stats.items():
            totals[k] = totals.get(k, 0) + v
    console.print(totals)


audit_app = typer.Typer(help="The tamper-evident audit trail (lead_event, access_log).", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify(seal_first: Annotated[bool, typer.Option("--seal/--no-seal",
                                                          help="Seal rows written since the last run first")] = False
                 ) -> None:
    """Check both hash chains; name the first broken link and exit 1 when one is broken."""
    from dispatch.audit import run_verify

    urls = _urls()
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


@app.command("gen-district")
def gen_district(directory: Path, seed: Annotated[int, typer.Option(help="Same seed, same district")] = 15) -> None:
    """Write a sample district (锦城区, Chengdu: streets, beats, stations, squads) into DIR."""
    from service.tools.gen_district import DistrictSpec, write_district

    console.print(write_district(directory, DistrictSpec(seed=seed)))


@app.command()
def demo(port: int = 8000, district: Annotated[Path | None, typer.Option(help="District to import when none is loaded "
                                                                   "(default: one generated by gen-district)")] = None,
         speed: Annotated[float, typer.Option(help="Simulated seconds per wall second")] = 60.0,
         per_day: Annotated[float, typer.Option(help="Leads per simulated day (a busy district: one a minute)")]
         = 1440.0) -> None:
    """Everything on embedded defaults: PostgreSQL, Redis, the API, a worker, demo accounts and a simulated
    district at work (`quanzu simulate` live, `quanzu field-sim`). Ctrl-C, SIGTERM or SIGHUP stops all of it."""
    from service.tools.demo import Demo

    def say(line: str) -> None:
        try:
            console.print(line)
        except OSError:  # the terminal is gone (SIGHUP): keep stopping quietly
            pass

    if not (0 < per_day <= 1_000_000 and 0 < speed <= 100_000):
        raise fail("--per-day and --speed must be positive (at most 1,000,000 and 100,000)")
    Demo(port=port, district=district, state_dir=get_settings().state_dir, say=say, speed=speed,
         per_day=per_day).run()


@app.command()
def simulate(
    url: Annotated[str | None, typer.Option(help="Live: the server to drive, e.g. http://127.0.0.1:8000")] = None,
    api_key: Annotated[str | None, typer.Option(help="Live: a source API key (pushes leads and cases)")] = None,
    username: Annotated[str | None, typer.Option(help="Live: an operator who posts calls and callbacks")] = None,
    password: Annotated[str | None, typer.Option()] = None,
    leads: Annotated[int, typer.Option(help="How many leads (live: pushes; bulk: rows)")] = 200,
    speed: Annotated[float, typer.Option(help="Live: simulated seconds per wall second")] = 60.0,
    per_day: Annotated[float, typer.Option(help="Leads per simulated day")] = 80.0,
    seed: Annotated[int, typer.Option()] = 7,
    bulk: Annotated[bool, typer.Option(help="Write straight into DATABASE_URL with COPY (benchmarks)")] = False,
) -> None:
    """Generate realistic leads, call results, callbacks and cases: live against a server over HTTP,
    or bulk-loaded into PostgreSQL."""
    import asyncio
    from datetime import UTC, datetime

    from service.tools import simulate as sim

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
    if not (0 < per_day <= 1_000_000 and 0 < speed <= 100_000):
        raise fail("--per-day and --speed must be positive (at most 1,000,000 and 100,000)")

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
            now = datetime.now(UTC)  # live: from now on; ids numbered by the wall clock, so a rerun is no duplicate
            gen = sim.Generator(area, seed, start=now, per_day=per_day, first_seq=int(now.timestamp()) % 10**6 * 10)
            return await sim.run_live(client, gen, leads=leads, speed=speed, api_key=api_key, token=token)

    report = asyncio.run(live())
    console.print(f"pushed {report.leads} leads, {report.cases} cases, {report.signed} signed, {report.calls} calls, "
                  f"{report.callbacks} callbacks; answers: {dict(report.answers)}")


@app.command()
def report(month: Annotated[str, typer.Option(help="YYYY-MM (center time)")],
           out: Annotated[Path | None, typer.Option(help="Where to write (default quanzu-YYYY-MM.xlsx)")] = None) -> None:
    """Write the monthly report (月通报) as an .xlsx workbook, the same file GET /reports/monthly gives."""
    import asyncio
    import re

    from sqlalchemy.ext.asyncio import AsyncSession

    from dispatch.outcomes import report as monthly
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
