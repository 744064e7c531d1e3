"""/api/v1/geo: the district's beats and streets as GeoJSON, and where a point lies."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from geo.crs import CRS, to_wgs84
from geo.models import Beat, Street
from geo.store import beat_feature, feature_collection, street_feature
from service.core.auth import AnyCaller
from service.core.db import SessionDep
from service.core.errors import NotFound
from service.core.openapi import error_responses
from service.core.responses import JSON


class Feature(BaseModel):
    type: Literal["Feature"]
    geometry: dict[str, Any] = Field(description="GeoJSON geometry, WGS-84")
    properties: dict[str, Any] = Field(description="code, name (and street_code, station_code for beats)")


class FeatureCollection(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[Feature]


class Located(BaseModel):
    lon: float = Field(description="WGS-84")
    lat: float
    beat_code: str | None
    street_code: str | None
    district_code: str | None = Field(None, description="The district of the city the point is in (null: outside)")
    in_jurisdiction: bool = Field(description="Inside one of the city's districts")

router = APIRouter(prefix="/api/v1/geo", tags=["geo"])


@router.get("/beats", response_model=FeatureCollection, responses=error_responses(401),
            summary="警务区 as a GeoJSON FeatureCollection. Any authenticated caller.")
async def beats(session: SessionDep, _: AnyCaller):
    rows = (await session.execute(select(Beat).order_by(Beat.code))).scalars()
    return JSON(feature_collection([beat_feature(b) for b in rows]))


@router.get("/streets", response_model=FeatureCollection, responses=error_responses(401),
            summary="街道 as a GeoJSON FeatureCollection. Any authenticated caller.")
async def streets(session: SessionDep, _: AnyCaller):
    rows = (await session.execute(select(Street).order_by(Street.code))).scalars()
    return JSON(feature_collection([street_feature(s) for s in rows]))


@router.get("/locate", response_model=Located, responses=error_responses(401, 404),
            summary="Normalise a point to WGS-84 and find its beat and street. Any authenticated caller.")
async def locate(request: Request, session: SessionDep, _: AnyCaller,
                 lon: Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)],
                 lat: Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)],
                 crs: CRS = CRS.wgs84) -> dict:
    loaded = await request.app.state.beat_index.get(session)
    if loaded is None:
        raise NotFound("no district imported yet: run `quanzu import-district DIR`")
    wlon, wlat = to_wgs84(lon, lat, crs)
    p = loaded.index.locate(wlon, wlat)
    return {"lon": p.lon, "lat": p.lat, "beat_code": p.beat_code, "street_code": p.street_code,
            "district_code": p.district_code, "in_jurisdiction": p.in_jurisdiction}
