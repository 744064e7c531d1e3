"""Which beats are neighbours (相邻警务区): precomputed once from the beat polygons.

Two beats are adjacent when their polygons touch or come within `GAP_DEG` (~5 m: rounding
slivers between beats in real data). A beat that touches nobody (an island, an enclave in the
sea) gets its `ISLAND_NEIGHBOURS` nearest beats instead, so every beat has a fallback."""
from __future__ import annotations

import shapely
from shapely.geometry import shape

GAP_DEG = 5e-5
ISLAND_NEIGHBOURS = 2


def beat_adjacency(beats: list[tuple[str, dict]]) -> dict[str, tuple[str, ...]]:
    """[(code, GeoJSON geometry)] → {code: neighbour codes, sorted}."""
    codes = [c for c, _g in beats]
    geoms = [shape(g) for _c, g in beats]
    tree = shapely.STRtree(geoms)
    out: dict[str, set[str]] = {c: set() for c in codes}
    left, right = tree.query(geoms, predicate="dwithin", distance=GAP_DEG)
    for i, j in zip(left.tolist(), right.tolist()):
        if i != j:
            out[codes[i]].add(codes[j])
            out[codes[j]].add(codes[i])
    for i, code in enumerate(codes):
        if not out[code] and len(codes) > 1:
            ranked = sorted((shapely.distance(geoms[i], geoms[j]), codes[j]) for j in range(len(codes)) if j != i)
            out[code].update(c for _d, c in ranked[:ISLAND_NEIGHBOURS])
    return {c: tuple(sorted(n)) for c, n in out.items()}
