"""Beat lookup speed: BeatIndex against a bare STRtree query.

    python bench/beats.py [DIR]

DIR is a district directory (beats.geojson, district.geojson). Without it a 10,000-beat
district is generated into a temporary directory by ../shared/tools/gen_district.py.
The 148-beat shared sample district is measured too when it is present.
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.beats import BeatIndex  # noqa: E402

GEN = ROOT.parent / "shared" / "tools" / "gen_district.py"
SHARED = ROOT.parent / "shared" / "data" / "district"
N_POINTS = 20_000
REPEAT = 3


def best_of(fn, repeat: int = REPEAT) -> float:
    """Best wall time of `repeat` runs, in seconds."""
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(directory: Path, label: str) -> None:
    beats = json.loads((directory / "beats.geojson").read_text(encoding="utf-8"))
    district = json.loads((directory / "district.geojson").read_text(encoding="utf-8"))

    build = best_of(lambda: BeatIndex.from_geojson(beats, district))
    index = BeatIndex.from_geojson(beats, district)
    bare = shapely.STRtree([shape(f["geometry"]) for f in beats["features"]])
    codes = [f["properties"]["code"] for f in beats["features"]]

    minx, miny, maxx, maxy = shapely.total_bounds(bare.geometries)
    rng = np.random.default_rng(1)
    lons, lats = rng.uniform(minx, maxx, N_POINTS), rng.uniform(miny, maxy, N_POINTS)
    xs, ys = lons.tolist(), lats.tolist()

    def raw():
        return [bare.query(shapely.points(x, y), predicate="intersects") for x, y in zip(xs, ys)]

    def raw_array():  # the same query, fed a 1-element array as locate does
        return [bare.query(shapely.points([(x, y)]), predicate="intersects")[1] for x, y in zip(xs, ys)]

    def one_by_one():
        return [index.locate(x, y) for x, y in zip(xs, ys)]

    t_raw, t_raw_arr = best_of(raw), best_of(raw_array)
    t_one, t_many = best_of(one_by_one), best_of(lambda: index.locate_many(lons, lats))

    # the answers must agree, or the timing means nothing
    singles, many = one_by_one(), index.locate_many(lons, lats)
    raw_codes = [codes[h.min()] if len(h) else None for h in raw()]
    hit_codes = [p.beat_code for p in singles]
    direct = sum(r is not None for r in raw_codes)
    agree = sum(r == h for r, h in zip(raw_codes, hit_codes) if r is not None)
    slivers = sum(r is None and p.beat_code is not None for r, p in zip(raw_codes, singles))

    us = 1e6 / N_POINTS
    print(f"\n== {label}: {len(index):,} beats, {N_POINTS:,} points in the bbox "
          f"({sum(p.in_jurisdiction for p in singles):,} in the district), best of {REPEAT}")
    print(f"build BeatIndex:             {build * 1e3:9.1f} ms")
    print(f"(a)  raw query, points(x,y): {t_raw * us:9.2f} µs/point   (baseline)")
    print(f"(a') raw query, 1-elem array:{t_raw_arr * us:9.2f} µs/point")
    print(f"(b)  locate:                 {t_one * us:9.2f} µs/point   "
          f"= {t_one / t_raw:.2f}x the raw query time ({t_raw / t_one:.2f}x faster); "
          f"{t_one / t_raw_arr:.2f}x the 1-elem array query")
    print(f"(c)  locate_many:            {t_many * us:9.2f} µs/point   "
          f"= {t_many / t_raw:.3f}x the raw query time ({t_raw / t_many:.1f}x faster)")
    print(f"answers: locate_many == locate: {many == singles}; "
          f"locate == raw lowest-index hit: {agree:,}/{direct:,}; sliver fallbacks: {slivers}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", nargs="?", type=Path, help="a district directory (beats.geojson, district.geojson); "
                   "without it a 10,000-beat district is generated")
    args = p.parse_args()
    if args.dir is not None:
        bench(args.dir, str(args.dir))
    else:
        with tempfile.TemporaryDirectory(prefix="quanzu-bench-") as tmp:
            out = Path(tmp) / "d10k"
            t = time.perf_counter()
            subprocess.run([sys.executable, str(GEN), str(out), "--beats", "10000", "--streets", "60",
                            "--radius-km", "40", "--leads", "2000"], check=True, stdout=subprocess.DEVNULL)
            print(f"generated a 10,000-beat district in {time.perf_counter() - t:.1f} s")
            bench(out, "generated 10k-beat district")
    if (SHARED / "beats.geojson").is_file():
        bench(SHARED, "shared 148-beat district")
    else:
        print(f"\n(shared sample district not found at {SHARED}; skipped)")


if __name__ == "__main__":
    main()
