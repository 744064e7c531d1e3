"""/api/v1/geo: the district's beats and streets as GeoJSON, and where a point lies."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from geo.crs import CRS, to_wgs84
from geo.models import Beat, Street
from geo.store import beat_feature, feature_collection, street_feature
from service.core.auth import AnyCaller
from service.core.db import SessionDep
from service.core.errors import NotFound

router = APIRouter(prefix="/api/v1/geo", tags=["geo"])


@router.get("/beats", summary="警务区 as a GeoJSON FeatureCollection. Any authenticated caller.")
async def beats(session: SessionDep, _: AnyCaller) -> dict:
    rows = (await session.execute(select(Beat).order_by(Beat.code))).scalars()
    return feature_collection([beat_feature(b) for b in rows])


@router.get("/streets", summary="街道 as a GeoJSON FeatureCollection. Any authenticated caller.")
async def streets(session: SessionDep, _: AnyCaller) -> dict:
    rows = (await session.execute(select(Street).order_by(Street.code))).scalars()
    return feature_collection([street_feature(s) for s in rows])


@router.get("/locate", summary="Normalise a point to WGS-84 and find its beat and street. Any authenticated caller.")
async def locate(request: Request, session: SessionDep, _: AnyCaller,
                 lon: Annotated[float, Query(ge=-180, le=180)], lat: Annotated[float, Query(ge=-90, le=90)],
                 crs: CRS = CRS.wgs84) -> dict:
    loaded = await request.app.state.beat_index.get(session)
    if loaded is None:
        raise NotFound("no district imported yet: run `quanzu import-district DIR`")
    wlon, wlat = to_wgs84(lon, lat, crs)
    p = loaded.index.locate(wlon, wlat)
    return {"lon": p.lon, "lat": p.lat, "beat_code": p.beat_code, "street_code": p.street_code,
            "in_jurisdiction": p.in_jurisdiction}
