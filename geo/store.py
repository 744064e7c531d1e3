"""Reading the district back from the database, and one beat index per process and district version."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Session

from geo.beats import CityIndex
from geo.models import Beat, District, Street


def feature_collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def beat_feature(b: Beat) -> dict:
    return {"type": "Feature", "geometry": b.geometry,
            "properties": {"code": b.code, "name": b.name, "street_code": b.street_code,
                           "station_code": b.station_code, "district_code": b.district_code}}


def street_feature(s: Street) -> dict:
    return {"type": "Feature", "geometry": s.geometry,
            "properties": {"code": s.code, "name": s.name, "district_code": s.district_code}}


@dataclass(frozen=True, slots=True)
class LoadedIndex:
    index: CityIndex
    versions: tuple[tuple[str, int], ...]  # (district code, version) of every district of the city

    @property
    def district_codes(self) -> tuple[str, ...]:
        return self.index.district_codes


def _build(districts: list[District], beats: list[Beat]) -> LoadedIndex:
    by_district: dict[str | None, list[dict]] = {}
    for b in beats:
        by_district.setdefault(b.district_code, []).append(beat_feature(b))
    # Beats imported before the city (no district_code) belong to the one district there was.
    if None in by_district and len(districts) == 1:
        by_district.setdefault(districts[0].code, []).extend(by_district.pop(None))
    index = CityIndex([(d.code, d.geometry, feature_collection(by_district.get(d.code, []))) for d in districts])
    return LoadedIndex(index, tuple((d.code, d.version) for d in districts))


_VERSIONS = select(District.code, District.version).order_by(District.code)


def district_versions(session: Session) -> tuple[tuple[str, int], ...]:
    """(code, version) of every district, read once per transaction: an urgent lead's transaction
    asks twice (the beat index to place it, the beats' adjacency to offer it)."""
    seen = session.info.get("district_versions")
    if seen is not None and seen[0] is session.get_transaction():
        return seen[1]
    versions = tuple(tuple(r) for r in session.execute(_VERSIONS).all())
    session.info["district_versions"] = (session.get_transaction(), versions)
    return versions


class IndexCache:
    """The STRtree over every district's beats is built once per process and rebuilt only when an
    import adds a district or bumps one's version (checked by code and version alone: the outlines
    are read only to rebuild)."""

    def __init__(self) -> None:
        self.current: LoadedIndex | None = None

    def _stale(self, versions: tuple) -> bool:
        return self.current is None or self.current.versions != versions

    def get_sync(self, session: Session) -> LoadedIndex | None:
        versions = district_versions(session)
        if not versions:
            return None
        if self._stale(versions):
            districts = list(session.execute(select(District).order_by(District.code)).scalars())
            self.current = _build(districts, list(session.execute(select(Beat)).scalars()))
        return self.current

    async def get(self, session: AsyncSession) -> LoadedIndex | None:
        versions = tuple(tuple(r) for r in (await session.execute(_VERSIONS)).all())
        if not versions:
            return None
        if self._stale(versions):
            districts = list((await session.execute(select(District).order_by(District.code))).scalars())
            self.current = _build(districts, list((await session.execute(select(Beat))).scalars()))
        return self.current
