"""Squads (劝阻小组): duty status, location, and how they read to the center and to themselves.

The live position also goes to Redis (GEOADD `quanzu:teams:geo`, with its time in
`quanzu:teams:at`) after commit, for maps and quick radius queries; PostgreSQL keeps the last one
(`team.last_*`), which is what matching reads."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlmodel import Session

from dispatch import events
from dispatch.assignments import FieldConfig, _iso, load_squads, open_counts
from dispatch.models import Team, TeamMember
from dispatch.validation import mask_phone
from geo.crs import to_wgs84
from service.core import clock
from service.core.auth import CENTER_ROLES, SQUAD_ROLES, Principal
from service.core.errors import Forbidden, NotFound, ValidationFailed

GEO_KEY = "quanzu:teams:geo"
GEO_AT = "quanzu:teams:at"
TEAM_STATUS = ("on_duty", "off_duty", "busy")


def _own_team(session: Session, who: Principal) -> Team:
    if who.role not in SQUAD_ROLES or not who.team_code:
        raise Forbidden("only squad members have a team")
    team = session.get(Team, who.team_code, with_for_update=True)
    if team is None:
        raise NotFound(f"team {who.team_code} not found")
    return team


def set_status(session: Session, who: Principal, status: str) -> dict:
    if status not in TEAM_STATUS:
        raise ValidationFailed([{"field": "status", "message": f"one of {', '.join(TEAM_STATUS)}"}])
    team = _own_team(session, who)
    team.status = status
    events.board(session, "team.updated", {"team_code": team.code, "status": status, "by": who.name})
    return {"team_code": team.code, "status": status}


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
        return {"team_code": team.code, "lon": team.last_lon, "lat": team.last_lat, "at": _iso(team.last_at),
                "kept": "newer location on file"}
    team.last_lon, team.last_lat, team.last_at = wlon, wlat, when
    code = team.code

    def to_redis() -> None:
        if events.config.redis is not None:
            pipe = events.config.redis.pipeline(transaction=False)
            pipe.geoadd(GEO_KEY, (wlon, wlat, code))
            pipe.hset(GEO_AT, code, when.timestamp())
            pipe.execute()

    events.after_commit(session, to_redis)
    events.board(session, "team.updated", {"team_code": code, "lon": wlon, "lat": wlat, "at": _iso(when),
                                           "accuracy_m": accuracy_m})
    return {"team_code": code, "lon": wlon, "lat": wlat, "at": _iso(when)}


def _may_see_phones(who: Principal, team_code: str) -> bool:
    return who.role in CENTER_ROLES or (who.role in SQUAD_ROLES and who.team_code == team_code)


def _team_public(team: Team, squad, members: list[TeamMember] | None, who: Principal) -> dict:
    now = clock.now()
    age = (now - team.last_at).total_seconds() if team.last_at else None
    out = {"code": team.code, "name": team.name, "beat_code": team.beat_code, "status": team.status,
           "home": {"lon": team.home_lon, "lat": team.home_lat} if team.home_lon is not None else None,
           "last_location": ({"lon": team.last_lon, "lat": team.last_lat, "at": _iso(team.last_at),
                              "age_s": round(age, 1)} if team.last_at else None),
           "location_stale": not squad.position.fresh, "position_source": squad.position.source,
           "position": {"lon": squad.position.lon, "lat": squad.position.lat},
           "open_assignments": squad.open_assignments}
    if members is not None:
        full = _may_see_phones(who, team.code)
        out["members"] = [{"role": m.role, "name": m.name, "phone": m.phone if full else mask_phone(m.phone),
                           "badge_no": m.badge_no, "username": m.username if full else None} for m in members]
    return out


def list_teams(session: Session, who: Principal, cfg: FieldConfig, status: str | None = None) -> list[dict]:
    squads = {s.code: s for s in load_squads(session, cfg)}
    q = select(Team).order_by(Team.code)
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
    mem = session.execute(select(TeamMember).where(TeamMember.team_code == code).order_by(TeamMember.id)).scalars()
    out = _team_public(team, squad, list(mem), who)
    out["open_assignments"] = open_counts(session).get(code, 0)
    return out
