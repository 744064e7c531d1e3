"""`quanzu import-district DIR`: load or update the district, its streets, beats, stations and squads."""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from dispatch.models import Team, TeamMember
from geo.district import DistrictData
from geo.models import Beat, District, Station, Street

Progress = Callable[[str, int], None]  # (what, how many done) – drives the CLI's progress bar


def _upsert(session: Session, model, rows: list[dict], key: str = "code") -> None:
    if not rows:
        return
    stmt = insert(model).values(rows)
    stmt = stmt.on_conflict_do_update(index_elements=[key],
                                      set_={c: stmt.excluded[c] for c in rows[0] if c != key})
    session.execute(stmt)


def _feature_rows(features: list[dict], *extra: str) -> list[dict]:
    rows = []
    for f in features:
        p = f["properties"]
        rows.append({"code": p["code"], "name": p["name"], "geometry": f["geometry"],
                     **{k: p.get(k) for k in extra}})
    return rows


def import_district(session: Session, data: DistrictData, progress: Progress | None = None) -> dict:
    """Idempotent: a second import updates rows in place and bumps the district version,
    so every process rebuilds its beat index. The caller commits."""
    step = progress or (lambda _what, _n: None)
    existing = session.get(District, data.code)
    geometry = data.outline
    if existing is None:
        session.add(District(code=data.code, name=data.name, geometry=geometry, version=1))
    else:
        existing.name, existing.geometry, existing.version = data.name, geometry, existing.version + 1
    session.flush()
    step("district", 1)
    _upsert(session, Street, _feature_rows(data.streets))
    step("streets", len(data.streets))
    _upsert(session, Station, [{k: s[k] for k in ("code", "name", "street_code", "lon", "lat")}
                               for s in data.stations])
    step("stations", len(data.stations))
    _upsert(session, Beat, _feature_rows(data.beats, "street_code", "station_code"))
    step("beats", len(data.beats))
    _upsert(session, Team, [{"code": t["code"], "name": t["name"], "beat_code": t.get("beat_code"),
                             "home_lon": (t.get("home") or {}).get("lon"),
                             "home_lat": (t.get("home") or {}).get("lat")} for t in data.teams])
    codes = [t["code"] for t in data.teams]
    # Members are replaced as a whole: the roster in the file is the truth; a member's login link
    # (team_member.username) is kept for the same person (team, role, name).
    logins = {(m.team_code, m.role, m.name): m.username for m in session.execute(
        select(TeamMember).where(TeamMember.team_code.in_(codes), TeamMember.username.is_not(None))).scalars()}
    session.execute(delete(TeamMember).where(TeamMember.team_code.in_(codes)))
    members = [{"team_code": t["code"], "role": m["role"], "name": m["name"], "phone": m.get("phone"),
                "badge_no": m.get("badge_no"), "username": logins.get((t["code"], m["role"], m["name"]))}
               for t in data.teams for m in t.get("members", [])]
    if members:
        session.execute(insert(TeamMember).values(members))
    step("teams", len(data.teams))
    version = session.get(District, data.code).version
    return {"district": data.code, "version": version, "streets": len(data.streets), "beats": len(data.beats),
            "stations": len(data.stations), "teams": len(data.teams)}
