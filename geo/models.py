"""The district's geography as tables. Geometries are GeoJSON in JSONB; the index lives in memory (geo.beats)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


def _now_column() -> Column:
    return Column(DateTime(timezone=True), nullable=False, server_default=func.now())


class District(SQLModel, table=True):
    code: str = Field(primary_key=True)
    name: str
    geometry: dict = Field(sa_column=Column(JSONB, nullable=False))
    # Bumped on every import so long-running processes know to rebuild their beat index.
    version: int = 1
    imported_at: datetime = Field(sa_column=_now_column())


class Street(SQLModel, table=True):
    code: str = Field(primary_key=True)
    name: str
    district_code: str | None = Field(default=None, index=True)
    geometry: dict = Field(sa_column=Column(JSONB, nullable=False))


class Station(SQLModel, table=True):
    code: str = Field(primary_key=True)
    name: str
    district_code: str | None = Field(default=None, index=True)
    street_code: str = Field(foreign_key="street.code", index=True)
    lon: float
    lat: float


class Beat(SQLModel, table=True):
    code: str = Field(primary_key=True)
    name: str
    district_code: str | None = Field(default=None, index=True)
    street_code: str = Field(foreign_key="street.code", index=True)
    station_code: str | None = Field(default=None, foreign_key="station.code")
    geometry: dict = Field(sa_column=Column(JSONB, nullable=False))


class GeocodeCache(SQLModel, table=True):
    """Answers of the center's geocoder per (provider, address): `found` false caches a miss too."""
    __tablename__ = "geocode_cache"
    provider: str = Field(primary_key=True)
    address: str = Field(primary_key=True)
    found: bool
    lon: float | None = None  # WGS-84
    lat: float | None = None
    answered_at: datetime = Field(sa_column=_now_column())
