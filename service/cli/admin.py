"""Setting a center up: its district, its users, its upstream sources' API keys."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn

from service.cli.common import console, db_session, fail, servers


def import_district(directory: Path) -> None:
    """Add or update a district of the city (streets, beats, stations, squads) from DIR: the district
    named by its district.geojson code."""
    from dispatch.district import CodeTaken
    from dispatch.district import import_district as do_import
    from geo.district import DistrictError, load_district_dir

    try:
        data = load_district_dir(directory)
    except DistrictError as exc:
        raise fail(str(exc)) from None
    urls = servers()
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      console=console) as bar:
            total = 1 + len(data.streets) + len(data.stations) + len(data.beats) + len(data.teams)
            task = bar.add_task(f"importing {data.name}", total=total)
            with db_session(urls) as session:
                try:
                    summary = do_import(session, data, lambda what, n: bar.update(task, advance=n,
                                                                                   description=f"importing {what}"))
                except CodeTaken as exc:
                    raise fail(str(exc)) from None
                session.commit()
        console.print(summary)
    finally:
        urls.stop()


DistrictOpt = Annotated[str | None, typer.Option(help="The district of the city the account belongs to "
                                                     "(its code); without it, the city center")]


def _district_exists(session, code: str | None) -> None:
    from geo.models import District

    if code is not None and session.get(District, code) is None:
        raise fail(f"no district {code!r}: import it first (quanzu import-district DIR)")


def create_user(username: str, role: Annotated[str, typer.Option()], password: Annotated[str, typer.Option()],
                team: Annotated[str | None, typer.Option()] = None, district: DistrictOpt = None) -> None:
    """Create or update a user (admin, commander, operator, police, auxiliary, grid_worker) of a
    district (--district CODE) or of the city center. A squad member belongs to their squad's district."""
    from sqlalchemy import select

    from dispatch.models import Team
    from service.core.auth import SQUAD_ROLES, Role, hash_password
    from service.core.models import User

    if role not in Role.__members__:
        raise fail(f"unknown role {role!r}; one of {', '.join(Role)}")
    if role in SQUAD_ROLES and not team:
        raise fail(f"a {role} belongs to a squad: give --team TEAM_CODE")
    urls = servers()
    try:
        with db_session(urls) as session:
            _district_exists(session, district)
            squad = session.get(Team, team) if team else None
            if team and squad is None:
                raise fail(f"no team {team!r}: import the district first")
            if squad is not None and squad.district_code is not None:
                if district is not None and district != squad.district_code:
                    raise fail(f"team {team!r} is of district {squad.district_code}, not {district}")
                district = squad.district_code
            user = session.execute(select(User).where(User.username == username)).scalar()
            if user is None:
                user = User(username=username, password_hash="", role=role)
                session.add(user)
            else:  # a new password (and maybe role or squad): every earlier token ends
                user.token_version += 1
            user.password_hash, user.role, user.team_code, user.active = hash_password(password), role, team, True
            user.district_code = district
            session.commit()
        where = f"district {district}" if district else "city center"
        console.print(f"user {username} ({role}{', ' + team if team else ''}, {where}) ready")
    finally:
        urls.stop()


def create_api_key(name: Annotated[str, typer.Option()], district: DistrictOpt = None,
                   source: Annotated[list[str] | None, typer.Option(
                       help="A source it may push as (repeatable; `cases` for case reports); none: any")] = None,
                   gateway: Annotated[bool, typer.Option(
                       help="The SMS gateway's key: receipts and replies only, never leads")] = False) -> None:
    """Create an API key for an upstream source (of a district, or of the city center: the platforms
    push to the city, and placement decides the district); the key is printed once, alone on the last line."""
    from sqlalchemy.exc import IntegrityError

    from service.cli.access import key_scope
    from service.core.auth import hash_api_key, new_api_key
    from service.core.models import ApiKey

    sources, kind = key_scope(source, gateway)
    key = new_api_key()
    urls = servers()
    try:
        with db_session(urls) as session:
            _district_exists(session, district)
            session.add(ApiKey(name=name, key_hash=hash_api_key(key), prefix=key[:8], sources=sources, kind=kind,
                               district_code=district))
            try:
                session.commit()
            except IntegrityError:
                raise fail(f"an API key named {name!r} exists already") from None
    finally:
        urls.stop()
    console.print(f"API key for {name} (store it now; only its hash is kept):")
    print(key)
