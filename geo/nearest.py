"""Nearest points by haversine, with a spatial index: many squads, one query per offer.

Points are indexed in a local equirectangular plane (metres, scaled at the mean latitude), so
an STRtree box query finds the candidates within r; haversine ranks them exactly. The radius
doubles until k accepted points are found — a few cheap queries instead of a scan of all."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from math import cos, radians

import numpy as np
import shapely

from geo.distance import EARTH_RADIUS_M, haversine_m

_M_PER_DEG = radians(1) * EARTH_RADIUS_M


class PointIndex:
    """Immutable after construction; `nearest` → [(distance_m, i)] best first."""

    def __init__(self, lonlats: Sequence[tuple[float, float]]):
        self.lonlats = [(float(lo), float(la)) for lo, la in lonlats]
        self._n = len(self.lonlats)
        lat0 = float(np.mean([la for _lo, la in self.lonlats])) if self.lonlats else 0.0
        self._kx = _M_PER_DEG * cos(radians(lat0))
        xy = np.array([(lo * self._kx, la * _M_PER_DEG) for lo, la in self.lonlats]).reshape(-1, 2)
        self._tree = shapely.STRtree(shapely.points(xy)) if self._n else None
        # The plane's worst-case stretch across the district: radii are grown by it so no
        # point within r (haversine) is missed by the planar box.
        self._slack = 1.05

    def nearest(self, lon: float, lat: float, k: int = 1, accept: Callable[[int], bool] | None = None,
                start_m: float = 1000.0) -> list[tuple[float, int]]:
        if not self._n:
            return []
        x, y = lon * self._kx, lat * _M_PER_DEG
        r = start_m
        while True:
            hits = self._tree.query(shapely.box(x - r * self._slack, y - r * self._slack,
                                                x + r * self._slack, y + r * self._slack))
            found = []
            for i in hits.tolist():
                if accept is None or accept(i):
                    lo, la = self.lonlats[i]
                    found.append((haversine_m(lon, lat, lo, la), i))
            found.sort()
            inside = [f for f in found if f[0] <= r]
            if len(inside) >= k or len(hits) >= self._n:
                return found[:k] if len(hits) >= self._n else inside[:k]
            r *= 2 if len(hits) else 4
