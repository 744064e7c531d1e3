"""Squads (劝阻小组: 民警 + 辅警 + 网格员): how they are read for matching, their duty status and
location, and how they read to the center and to themselves.

The live position also goes to Redis (GEOADD `<ns>:teams:geo`, with its time in
`<ns>:teams:at`) after commit, for maps and quick radius queries; PostgreSQL keeps the last one
(`team.last_*`), which is what matching reads."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Row, bindparam, func, select, text
from sqlmodel import Session

from dispatch import outbox
from dispatch.access import may_see_team_phones, own_team, readable_teams
from dispatch.enums import TeamStatus
from dispatch.field.matching import Squad, squad_position
from dispatch.identity import mask_phone
from dispatch.models import Assignment, Team, TeamMember
from dispatch.models.field import OPEN_ASSIGNMENT_SQL
from geo.adjacency import beat_adjacency
from geo.crs import to_wgs84
from geo.models import Beat, Station
from geo.store import district_versions
from service.core import clock
from service.core.auth import SQUAD_ROLES, Principal
from service.core.errors import NotFound, ValidationFailed
from service.core.models import User
from service.core.redis import key

# A squad member as offers need one: a row of (username, role, team_code).
Member = Row[tuple[str, str, str]]


@dataclass(frozen=True, slots=True)
class FieldConfig:
    offer_timeout_s: float = 60.0
    ack_s: float = 10.0
    max_squads: int = 3
    workload_limit: int = 3
    stale_s: float = 600.0
    field_page_url: str = "/m/"

    @classmethod
    def of(cls, settings, policy) -> FieldConfig:
        return cls(offer_timeout_s=float(policy.escalation.offer_timeout_seconds), ack_s=settings.offer_ack_seconds,
                   max_squads=settings.offer_max_squads, workload_limit=settings.squad_workload_limit,
                   stale_s=settings.location_stale_seconds, field_page_url=settings.field_page_url)


_adjacency_cache: dict[tuple, dict[str, tuple[str, ...]]] = {}


def adjacency(session: Session) -> dict[str, tuple[str, ...]]:
    """Beat neighbours, computed once per process and the districts' versions (every district's: a
    city's beats touch across districts, and any one of them may be imported again)."""
    versions = district_versions(session)
    if not versions:
        return {}
    if versions not in _adjacency_cache:
        beats = session.execute(select(Beat.code, Beat.geometry).order_by(Beat.code)).all()
        _adjacency_cache.clear()
        _adjacency_cache[versions] = beat_adjacency([(c, g) for c, g in beats])
    return _adjacency_cache[versions]


def _open_per_team():
    """Each squad's open assignments (by ix_assignment_open_team, not the table's every assignment
    ever made)."""
    return (select(Assignment.team_code, func.count().label("n")).where(text(f"assignment.{OPEN_ASSIGNMENT_SQL}"))
            .group_by(Assignment.team_code))


def _squads_query():
    """Every squad with its open assignments, as columns: matching reads every squad of the city for
    each dispatch, and an ORM object per row was a third of an urgent lead's time in the worker
    (BENCHMARKS "push → offer"). Built once (building it cost ~0.4 ms an offer)."""
    open_ = _open_per_team().subquery()
    return (select(Team.code, Team.beat_code, Team.status, Team.district_code, Team.last_lon, Team.last_lat,
                   Team.last_at, Team.home_lon, Team.home_lat, Station.lon, Station.lat, func.coalesce(open_.c.n, 0))
            .outerjoin(Beat, Beat.code == Team.beat_code)
            .outerjoin(Station, Station.code == Beat.station_code)
            .outerjoin(open_, open_.c.team_code == Team.code).order_by(Team.code))


_ALL_SQUADS = _squads_query()
_OF_DISTRICT = (Team.district_code == bindparam("district")) | Team.district_code.is_(None)
_SQUADS_OF_CODES = _ALL_SQUADS.where(Team.code.in_(bindparam("codes", expanding=True)))
_SQUADS_OF_DISTRICT = _ALL_SQUADS.where(_OF_DISTRICT)


def load_squads(session: Session, cfg: FieldConfig, codes: list[str] | None = None,
                district: str | None = None) -> list[Squad]:
    """The squads as matching sees them (all, those of `codes`, or those a lead of `district` may get:
    its district's and the city's own — dispatch.field.matching.of_district), with their open
    assignments, in one statement: it is read for every offer, on an urgent lead's path."""
    now, stale_s = clock.now(), cfg.stale_s
    q, params = _ALL_SQUADS, {}
    if codes is not None:
        q, params["codes"] = _SQUADS_OF_CODES, list(codes)
    if district is not None:
        q, params["district"] = (_SQUADS_OF_DISTRICT if codes is None else q.where(_OF_DISTRICT)), district
    rows = session.execute(q, params)
    return [Squad(code, beat, status, n, squad_position((llon, llat) if llon is not None else None, lat_at,
                                                        (hlon, hlat) if hlon is not None else None,
                                                        (slon, slat) if slon is not None else None, now, stale_s),
                  squad_district)
            for code, beat, status, squad_district, llon, llat, lat_at, hlon, hlat, slon, slat, n in rows]


_MEMBERS = (select(User.username, User.role, User.team_code)
            .where(User.team_code == bindparam("team"), User.active.is_(True), User.role.in_(list(SQUAD_ROLES)))
            .order_by(User.username))


def members(session: Session, team_code: str) -> list[Member]:
    """The squad's people with accounts (民警, 辅警, 网格员): they get its offers. Read for every offer:
    the three columns it needs, not User objects."""
    return list(session.execute(_MEMBERS, {"team": team_code}).all())


def roster(session: Session, team_code: str) -> list[TeamMember]:
    """The squad's roster rows (team_member), in roster order: read once for all its members' phones."""
    return list(session.execute(select(TeamMember).where(TeamMember.team_code == team_code)
                                .order_by(TeamMember.id)).scalars())


def member_phone(user: Member | User, rows: list[TeamMember]) -> str | None:
    """The roster phone of a member user, from their squad's `roster`: the entry linked by username,
    else the entry of the same role."""
    linked = next((m for m in rows if m.username == user.username), None)
    same_role = next((m for m in rows if m.role == user.role), None)
    m = linked or same_role
    return m.phone if m else None


def geo_key() -> str:
    return key("teams:geo")


def geo_at_key() -> str:
    return key("teams:at")


def _own_team(session: Session, who: Principal) -> Team:
    code = own_team(who)
    team = session.get(Team, code, with_for_update={"key_share": True})
    if team is None:
        raise NotFound(f"team {code} not found")
    return team


def set_status(session: Session, who: Principal, status: TeamStatus | str) -> dict:
    try:
        status = TeamStatus(status)
    except ValueError:
        raise ValidationFailed([{"field": "status", "message": f"one of {', '.join(TeamStatus)}"}]) from None
    team = _own_team(session, who)
    team.status = status.value
    outbox.board(session, "team.updated", {"team_code": team.code, "status": status.value, "by": who.name},
                 district=team.district_code)
    return {"team_code": team.code, "status": status.value}


def set_location(session: Session, who: Principal, lon: float, lat: float, crs: str = "wgs84",
                 accuracy_m: float | None = None, at: datetime | None = None) -> dict:
    team = _own_team(session, who)
    try:
        wlon, wlat = to_wgs84(lon, lat, crs)
    except ValueError as exc:
        raise ValidationFailed([{"field": "crs", "message": str(exc)}]) from None
    now = clock.now()
    when = min(at, now) if at is not None else now  # a phone's clock ahead of ours is not the future
    if team.last_at is not None and when < team.last_at:
        return {"team_code": team.code, "lon": team.last_lon, "lat": team.last_lat, "at": clock.iso(team.last_at),
                "kept": "newer location on file"}
    team.last_lon, team.last_lat, team.last_at = wlon, wlat, when
    code = team.code
    outbox.squad_position(session, code, wlon, wlat, when.timestamp())  # Redis GEO, after commit
    outbox.board(session, "team.updated", {"team_code": code, "lon": wlon, "lat": wlat, "at": clock.iso(when),
                                           "accuracy_m": accuracy_m}, district=team.district_code)
    return {"team_code": code, "lon": wlon, "lat": wlat, "at": clock.iso(when)}


def _team_public(team: Team, squad, members: list[TeamMember] | None, who: Principal) -> dict:
    now = clock.now()
    age = (now - team.last_at).total_seconds() if team.last_at else None
    out = {"code": team.code, "name": team.name, "beat_code": team.beat_code, "status": team.status,
           "home": {"lon": team.home_lon, "lat": team.home_lat} if team.home_lon is not None else None,
           "last_location": ({"lon": team.last_lon, "lat": team.last_lat, "at": clock.iso(team.last_at),
                              "age_s": round(age, 1)} if team.last_at else None),
           "location_stale": not squad.position.fresh, "position_source": squad.position.source,
           "position": {"lon": squad.position.lon, "lat": squad.position.lat},
           "open_assignments": squad.open_assignments}
    if members is not None:
        full = may_see_team_phones(who, team.code)
        out["members"] = [{"role": m.role, "name": m.name, "phone": m.phone if full else mask_phone(m.phone),
                           "badge_no": m.badge_no, "username": m.username if full else None} for m in members]
    return out


def list_teams(session: Session, who: Principal, cfg: FieldConfig, status: str | None = None) -> list[dict]:
    squads = {s.code: s for s in load_squads(session, cfg)}
    q = select(Team).where(readable_teams(who)).order_by(Team.code)
    if status:
        q = q.where(Team.status == status)
    rows = session.execute(q).scalars().all()
    by: dict[str, list[TeamMember]] = {}
    for m in session.execute(select(TeamMember).order_by(TeamMember.id)).scalars():
        by.setdefault(m.team_code, []).append(m)
    return [_team_public(t, squads[t.code], by.get(t.code, []), who) for t in rows]


def team_detail(session: Session, code: str, who: Principal, cfg: FieldConfig) -> dict:
    team = session.get(Team, code)
    if team is None:
        raise NotFound(f"team {code} not found")
    squad = load_squads(session, cfg, [code])[0]
    out = _team_public(team, squad, roster(session, code), who)
    out["open_assignments"] = squad.open_assignments
    return out


# ---------------------------------------------------------------- request dependencies
def field_config(request: Request) -> FieldConfig:
    return request.app.state.field_config


def presence(request: Request):
    """`online(usernames)`: who has a live socket now (an offer to nobody online goes by SMS at once)."""
    redis = request.app.state.redis
    return lambda names: outbox.online(redis, names)


FieldCfg = Annotated[FieldConfig, Depends(field_config)]
Presence = Annotated[object, Depends(presence)]
