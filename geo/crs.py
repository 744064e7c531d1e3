"""Coordinate systems that leads arrive in, and their conversion to WGS-84.

Sources send WGS-84 (GPS), GCJ-02 (国测局坐标, the offset system of Chinese map SDKs) or
BD-09 (百度坐标, Baidu's extra offset on top of GCJ-02). Near Qingdao GCJ-02 is ~500 m
off WGS-84 — bigger than a beat — so every point is normalised before it is placed.

Outside China GCJ-02 is not applied (prcoords' sanity box, roughly 72–138 E, 0.8–56 N):
such points pass through the GCJ-02 step unchanged in both directions, so a foreign
"gcj02" point is taken as WGS-84. The BD-09 step is applied everywhere, as prcoords does.
"""
from __future__ import annotations

from enum import StrEnum

import prcoords
from prcoords import Coords  # namedtuple (lat, lon) — note the order


class CRS(StrEnum):
    wgs84 = "wgs84"
    gcj02 = "gcj02"
    bd09 = "bd09"


def _in_china(c: Coords) -> bool:
    return prcoords.sanity_in_china_p(c)


def to_wgs84(lon: float, lat: float, crs: CRS | str) -> tuple[float, float]:
    """(lon, lat) in `crs` → (lon, lat) in WGS-84. Raises ValueError for an unknown crs."""
    crs = CRS(crs)
    if crs is CRS.wgs84:
        return lon, lat
    c = Coords(lat, lon)
    if crs is CRS.bd09:
        c = prcoords.bd_gcj_bored(c)
    # The precise (iterative) inverses, one step at a time: prcoords' bd_wgs_bored stops
    # while its last step is still 1e-5 deg and leaves up to ~1.6e-7 deg in BD-09 round
    # trips; chaining bd_gcj_bored and gcj_wgs_bored stays below 2e-8 deg (2 mm).
    if _in_china(c):
        c = prcoords.gcj_wgs_bored(c)
    return c.lon, c.lat


def from_wgs84(lon: float, lat: float, crs: CRS | str) -> tuple[float, float]:
    """(lon, lat) in WGS-84 → (lon, lat) in `crs` (for answers to map SDK clients, tests)."""
    crs = CRS(crs)
    if crs is CRS.wgs84:
        return lon, lat
    c = Coords(lat, lon)
    if _in_china(c):
        c = prcoords.wgs_gcj(c, False)  # check done above, without prcoords' warning
    if crs is CRS.bd09:
        c = prcoords.gcj_bd(c)
    return c.lon, c.lat
