"""Straight-line distance for squad choice: haversine on a sphere.

Within a district the spherical error is far below GPS error, and haversine costs
well under a microsecond where a geodesic (geopy) costs ~130 µs.
"""
from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean radius


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres between two WGS-84 points."""
    p1, p2 = radians(lat1), radians(lat2)
    a = sin((p2 - p1) * 0.5) ** 2 + cos(p1) * cos(p2) * sin(radians(lon2 - lon1) * 0.5) ** 2
    return 2.0 * EARTH_RADIUS_M * asin(sqrt(min(1.0, a)))  # min: rounding near antipodes
