"""Reading the district back from the database, and one beat index per process and district version."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Session

from geo.beats import BeatIndex
from geo.models import Beat, District, Street


def feature_collection(features: list[dict]) -> dict:
    return {"type": "FeatureCollection", "features": features}


def beat_feature(b: Beat) -> dict:
    return {"type": "Feature", "geometry": b.geometry,
            "properties": {"code": b.code, "name": b.name, "street_code": b.street_code,
                           "station_code": b.station_code}}


def street_feature(s: Street) -> dict:
    return {"type": "Feature", "geometry": s.geometry, "properties": {"code": s.code, "name": s.name}}


@dataclass(frozen=True, slots=True)
class LoadedIndex:
    index: BeatIndex
    district_code: str
    version: int


def _build(district: District, beats: list[Beat]) -> LoadedIndex:
    index = BeatIndex.from_geojson(feature_collection([beat_feature(b) for b in beats]), district.geometry)
    return LoadedIndex(index, district.code, district.version)


class IndexCache:
    """The STRtree is built once per process and rebuilt only when an import bumps the district version."""

    def __init__(self) -> None:
        self.current: LoadedIndex | None = None

    def _stale(self, district: District) -> bool:
        c = self.current
        return c is None or (c.district_code, c.version) != (district.code, district.version)

    def get_sync(self, session: Session) -> LoadedIndex | None:
        district = session.execute(select(District)).scalars().first()
        if district is None:
            return None
        if self._stale(district):
            self.current = _build(district, list(session.execute(select(Beat)).scalars()))
        return self.current

    async def get(self, session: AsyncSession) -> LoadedIndex | None:
        district = (await session.execute(select(District))).scalars().first()
        if district is None:
            return None
        if self._stale(district):
            self.current = _build(district, list((await session.execute(select(Beat))).scalars()))
        return self.current
