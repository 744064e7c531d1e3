"""Placing a point in its police beat (警务区) and street (街道).

One `BeatIndex` per process, built from the district's GeoJSON: an STRtree over the
prepared beat geometries (Polygons and MultiPolygons with islands and holes), queried with
the "intersects" predicate so holes and islands are exact, not bounding boxes.

Rules, in order:
1. The point intersects one or more beats → the lowest-index beat (a point on a shared
   edge or on an enclave's ring hits two; the choice must not vary between runs).
2. No beat, but inside the district outline (hairline slivers between beats left by
   coordinate rounding) → the nearest beat within `SLIVER_DEG` (~2 m).
3. Inside the outline with no beat that near: in jurisdiction, beat unknown — a gap in
   the beat data; the center handles the lead itself.
4. Otherwise outside the district: `in_jurisdiction=False`, to be transferred (移交).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import shape

# 2e-5 deg ≈ 2.2 m north-south, 1.8 m east-west at 36 N; rounding slivers are ~1 cm.
SLIVER_DEG = 2e-5


@dataclass(frozen=True, slots=True)
class Placement:
    lon: float  # WGS-84, as given
    lat: float
    beat_code: str | None
    street_code: str | None
    in_jurisdiction: bool
    district_code: str | None = None  # a CityIndex's answer: the district of the city the point is in


def _polygonal(geometry: dict, what: str):
    g = shape(geometry)
    if g.geom_type not in ("Polygon", "MultiPolygon") or g.is_empty:
        raise ValueError(f"{what}: geometry must be a non-empty Polygon or MultiPolygon, got {g.geom_type}")
    return g


class BeatIndex:
    """Point → beat lookup; immutable after construction, safe to share between threads."""

    def __init__(self, geoms: np.ndarray, codes: Sequence[str], street_codes: Sequence[str | None],
                 outline: shapely.Geometry) -> None:
        self._n = len(geoms)
        # Prepared once, here, so the instance is read-only afterwards (shared by threads).
        shapely.prepare(geoms)
        shapely.prepare(outline)
        self._tree = shapely.STRtree(geoms)
        self._outline = outline
        self._codes = list(codes)
        self._streets = list(street_codes)
        # Same, with a trailing None for "no beat", so locate_many can gather with one take.
        self._codes_arr = np.array([*self._codes, None], dtype=object)
        self._streets_arr = np.array([*self._streets, None], dtype=object)
        # Bound once: attribute lookups are a measurable share of a ~20 µs locate.
        self._query = self._tree.query
        self._points = shapely.points

    @classmethod
    def from_geojson(cls, beats: dict, district: dict | None = None) -> BeatIndex:
        """beats: FeatureCollection with properties `code`, `street_code`; district: the
        outline FeatureCollection, or None to take the union of the beats (closed by
        `SLIVER_DEG` so rounding slivers between beats count as inside)."""
        features = beats["features"]
        geoms = np.array([_polygonal(f["geometry"], f"beat {f['properties'].get('code')!r}")
                          for f in features], dtype=object)
        codes = [f["properties"]["code"] for f in features]
        streets = [f["properties"].get("street_code") for f in features]
        if district is not None:
            outline = shapely.union_all([_polygonal(f["geometry"], "district outline")
                                         for f in district["features"]])
        elif len(geoms):
            outline = shapely.union_all(geoms).buffer(SLIVER_DEG, join_style="mitre") \
                .buffer(-SLIVER_DEG, join_style="mitre")
        else:
            outline = shapely.Polygon()
        return cls(geoms, codes, streets, outline)

    def __len__(self) -> int:
        return self._n

    def locate(self, lon: float, lat: float) -> Placement:
        """Place one WGS-84 point."""
        # A 1-element array, not a scalar Point: STRtree.query spends more time in
        # np.expand_dims on a scalar than in the tree itself.
        point = self._points([(lon, lat)])
        hits = self._query(point, predicate="intersects")[1]
        if len(hits) == 1:
            i = hits[0]
            return Placement(lon, lat, self._codes[i], self._streets[i], True)
        if len(hits):
            i = hits.min()
            return Placement(lon, lat, self._codes[i], self._streets[i], True)
        return self._off_beat(lon, lat, point)

    def _off_beat(self, lon: float, lat: float, point: np.ndarray) -> Placement:
        if not self._outline.intersects(point[0]):  # the method has a scalar fast path
            return Placement(lon, lat, None, None, False)
        near = self._tree.query_nearest(point, max_distance=SLIVER_DEG, all_matches=True)[1]
        if len(near):
            i = near.min()
            return Placement(lon, lat, self._codes[i], self._streets[i], True)
        return Placement(lon, lat, None, None, True)

    def locate_many(self, lons: Sequence[float] | np.ndarray,
                    lats: Sequence[float] | np.ndarray) -> list[Placement]:
        """Place many WGS-84 points at once; the same answers as `locate`, point by point."""
        xs = np.asarray(lons, dtype=np.float64)
        ys = np.asarray(lats, dtype=np.float64)
        if xs.shape != ys.shape or xs.ndim != 1:
            raise ValueError("lons and lats must be 1-D and of equal length")
        points = shapely.points(xs, ys)
        none = self._n  # index of the trailing None in the code arrays
        beat = np.full(len(xs), none, dtype=np.intp)
        inp, hit = self._query(points, predicate="intersects")
        np.minimum.at(beat, inp, hit)  # lowest beat index per point, as in locate
        inside = beat < none
        miss = np.flatnonzero(~inside)
        if len(miss):
            miss = miss[shapely.intersects(self._outline, points[miss])]
            inside[miss] = True
            if len(miss):
                inp, hit = self._tree.query_nearest(points[miss], max_distance=SLIVER_DEG, all_matches=True)
                np.minimum.at(beat, miss[inp], hit)
        return [Placement(*row) for row in zip(xs.tolist(), ys.tolist(), self._codes_arr[beat].tolist(),
                                               self._streets_arr[beat].tolist(), inside.tolist())]


class CityIndex:
    """Point → district and beat across every district of a city: one STRtree over all beats (each
    carrying its district), the city's outline the union of the districts'. A point in no beat but
    inside a district's outline (a gap in its beat data) is that district's, beat unknown; a point
    outside every district is outside the city (`in_jurisdiction=False`, no district)."""

    def __init__(self, districts: list[tuple[str, dict, dict]]) -> None:
        """districts: (code, outline FeatureCollection, beats FeatureCollection) per district."""
        features, outlines, beat_district = [], [], {}
        for code, outline, beats in districts:
            features.extend(outline["features"])
            outlines.append(shapely.union_all([_polygonal(f["geometry"], f"district {code} outline")
                                               for f in outline["features"]]))
            for f in beats["features"]:
                beat_district[f["properties"]["code"]] = code
        all_beats = {"type": "FeatureCollection", "features": [f for _c, _o, b in districts for f in b["features"]]}
        self.beats = BeatIndex.from_geojson(all_beats, {"type": "FeatureCollection", "features": features})
        self.district_codes = tuple(code for code, _o, _b in districts)
        self._outlines = outlines
        for g in outlines:
            shapely.prepare(g)
        self._beat_district = beat_district

    def __len__(self) -> int:
        return len(self.beats)

    def _district(self, p: Placement) -> Placement:
        if p.beat_code is not None:
            code = self._beat_district.get(p.beat_code)
        elif p.in_jurisdiction:
            point = shapely.Point(p.lon, p.lat)
            code = next((c for c, g in zip(self.district_codes, self._outlines) if g.intersects(point)), None)
        else:
            return p
        return Placement(p.lon, p.lat, p.beat_code, p.street_code, p.in_jurisdiction, code)

    def locate(self, lon: float, lat: float) -> Placement:
        return self._district(self.beats.locate(lon, lat))

    def locate_many(self, lons, lats) -> list[Placement]:
        return [self._district(p) for p in self.beats.locate_many(lons, lats)]
