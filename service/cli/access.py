"""Who may act, changed from the command line: a user's role, squad, password or standing (each
change ends the user's earlier tokens at once), and the API keys (listed, revoked)."""
from __future__ import annotations

from typing import Annotated

import typer

from service.cli.common import console, db_session, fail, servers_in_environment


def key_scope(sources: list[str] | None, gateway: bool) -> tuple[list[str] | None, str]:
    """`--source …` / `--gateway` → (api_key.sources, api_key.kind); exits on a bad combination."""
    from dispatch.enums import Source
    from service.core.auth import CASES, GATEWAY, SOURCE

    if gateway:
        if sources:
            raise fail("--gateway speaks for no source: give --gateway or --source, not both")
        return [], GATEWAY
    if not sources:
        return None, SOURCE
    known = {*Source, CASES}
    unknown = [s for s in sources if s not in known]
    if unknown:
        raise fail(f"unknown source {', '.join(map(repr, unknown))}; one of {', '.join(sorted(known))}")
    return sorted(set(sources)), SOURCE


def _announce(urls, event: str) -> None:
    from service.core.redis import announce, make_redis

    redis = make_redis(urls.redis_url)
    try:
        announce(redis, event)
    finally:
        redis.close()


def update_user(username: str,
                role: Annotated[str | None, typer.Option(help="A new role")] = None,
                team: Annotated[str | None, typer.Option(help="Move to this squad (team code)")] = None,
                no_team: Annotated[bool, typer.Option("--no-team", help="Belongs to no squad (center roles)")] = False,
                password: Annotated[str | None, typer.Option(help="A new password")] = None,
                active: Annotated[bool | None, typer.Option("--activate/--deactivate",
                                                            help="Let the user sign in, or not")] = None) -> None:
    """Change a user's role, squad, password or standing; every token the user holds ends at once
    (their open sockets close), whatever changed."""
    from sqlalchemy import select

    from dispatch.models import Team
    from service.core.auth import SQUAD_ROLES, Role, hash_password
    from service.core.models import User

    if role is not None and role not in Role.__members__:
        raise fail(f"unknown role {role!r}; one of {', '.join(Role)}")
    if team and no_team:
        raise fail("give --team or --no-team, not both")
    urls = servers_in_environment()
    try:
        with db_session(urls) as session:
            user = session.execute(select(User).where(User.username == username)).scalar()
            if user is None:
                raise fail(f"no user {username!r}")
            if team and session.get(Team, team) is None:
                raise fail(f"no team {team!r}")
            new_role, new_team = role or user.role, (None if no_team else team or user.team_code)
            if new_role in SQUAD_ROLES and not new_team:
                raise fail(f"a {new_role} belongs to a squad: give --team TEAM_CODE")
            user.role, user.team_code = new_role, new_team
            if password is not None:
                user.password_hash = hash_password(password)
            if active is not None:
                user.active = active
            user.token_version += 1
            session.commit()
            state = "active" if user.active else "deactivated"
            console.print(f"user {username}: {user.role}{', ' + user.team_code if user.team_code else ''}, {state}; "
                          f"earlier tokens ended")
        _announce(urls, f"user:{username}")
    finally:
        urls.stop()


def list_api_keys() -> None:
    """Every API key: name, prefix, what it may speak for, created, last used, revoked."""
    from rich.console import Console
    from rich.table import Table
    from sqlalchemy import select

    from service.core.models import ApiKey

    urls = servers_in_environment()
    try:
        with db_session(urls) as session:
            keys = session.execute(select(ApiKey).order_by(ApiKey.name)).scalars().all()
    finally:
        urls.stop()
    table = Table("name", "prefix", "may speak for", "created", "last used", "revoked")
    for k in keys:
        scope = "SMS gateway" if k.kind == "gateway" else ("any source" if k.sources is None else ", ".join(k.sources))

        def when(t):
            return t.astimezone().strftime("%Y-%m-%d %H:%M") if t else "-"
        table.add_row(k.name, k.prefix + "…", scope, when(k.created_at), when(k.last_used_at), when(k.revoked_at))
    Console(width=160).print(table)  # stdout: the list is the command's output


def revoke_api_key(name: str) -> None:
    """Revoke an API key by name: refused from the next request on, on every API process."""
    from sqlalchemy import func, update

    from service.core.models import ApiKey

    urls = servers_in_environment()
    try:
        with db_session(urls) as session:
            done = session.execute(update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None))
                                   .values(revoked_at=func.now()).returning(ApiKey.id)).first()
            session.commit()
        if done is None:
            raise fail(f"no API key {name!r} in use")
        _announce(urls, "keys")
        console.print(f"API key {name} revoked")
    finally:
        urls.stop()
