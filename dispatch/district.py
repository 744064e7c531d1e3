"""`quanzu import-district DIR`: add or update one district of the city (named by its district.geojson
code), with its streets, beats, stations and squads, each marked with that district."""
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


def _feature_rows(features: list[dict], district: str, *extra: str) -> list[dict]:
    rows = []
    for f in features:
        p = f["properties"]
        rows.append({"code": p["code"], "name": p["name"], "district_code": district, "geometry": f["geometry"],
                     **{k: p.get(k) for k in extra}})
    return rows


class CodeTaken(ValueError):
    """A street, station, beat or squad code of the import is another district's already."""


def _check_codes(session: Session, data: DistrictData) -> None:
    """Codes are unique across the city: a district's import must not take over another's rows."""
    for model, codes in ((Street, [f["properties"]["code"] for f in data.streets]),
                         (Station, [s["code"] for s in data.stations]),
                         (Beat, [f["properties"]["code"] for f in data.beats]),
                         (Team, [t["code"] for t in data.teams])):
        taken = session.execute(select(model.code, model.district_code).where(
            model.code.in_(codes), model.district_code.is_not(None), model.district_code != data.code)
            .limit(3)).all()
        if taken:
            raise CodeTaken(f"{model.__tablename__} codes of district {data.code} belong to another district "
                            f"already: {', '.join(f'{c} ({d})' for c, d in taken)}")


def import_district(session: Session, data: DistrictData, progress: Progress | None = None) -> dict:
    """Idempotent: a second import updates rows in place and bumps the district version,
    so every process rebuilds its beat index. The caller commits."""
    step = progress or (lambda _what, _n: None)
    _check_codes(session, data)
    existing = session.get(District, data.code)
    geometry = data.outline
    if existing is None:
        session.add(District(code=data.code, name=data.name, geometry=geometry, version=1))
    else:
        existing.name, existing.geometry, existing.version = data.name, geometry, existing.version + 1
    session.flush()
    step("district", 1)
    d = data.code
    _upsert(session, Street, _feature_rows(data.streets, d))
    step("streets", len(data.streets))
    _upsert(session, Station, [{"district_code": d, **{k: s[k] for k in ("code", "name", "street_code", "lon", "lat")}}
                               for s in data.stations])
    step("stations", len(data.stations))
    _upsert(session, Beat, _feature_rows(data.beats, d, "street_code", "station_code"))
    step("beats", len(data.beats))
    _upsert(session, Team, [{"code": t["code"], "name": t["name"], "district_code": d, "beat_code": t.get("beat_code"),
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
