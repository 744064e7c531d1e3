import json
import math

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, mapping

from geo.beats import SLIVER_DEG, BeatIndex, Placement
from geo.crs import to_wgs84
from geo.distance import haversine_m
from tests.data import district_dir, shared_file

# ---------------------------------------------------------------- own fixture
# Unit cells of 0.01 deg near Qingdao, west to east:
#   A  mainland cell + an island to the south (MultiPolygon)
#   H  host cell with a hole, filled by the enclave E
#   L  shares its west edge with H
#   R  separated from L by a hairline gap of 1e-6 deg (~9 cm), as rounding leaves
#   a strip inside the district outline that no beat covers
X0, Y0, S = 120.30, 36.00, 0.01
GAP = 1e-6


def cell(x0, y0, x1, y1):
    return box(X0 + x0 * S, Y0 + y0 * S, X0 + x1 * S, Y0 + y1 * S)


def xy(x, y):
    return X0 + x * S, Y0 + y * S


HOLE = cell(1.3, 0.3, 1.7, 0.7)
ISLAND = cell(0.2, -1.0, 0.6, -0.6)
BEATS = {
    "A": (MultiPolygon([cell(0, 0, 1, 1), ISLAND]), "S1"),
    "H": (Polygon(cell(1, 0, 2, 1).exterior.coords, [HOLE.exterior.coords]), "S1"),
    "E": (HOLE, "S2"),
    "L": (cell(2, 0, 3, 1), "S2"),
    "R": (box(X0 + 3 * S + GAP, Y0, X0 + 4 * S, Y0 + S), "S2"),
}
OUTLINE = shapely.union_all([cell(0, 0, 4.5, 1), ISLAND])


def fc(items):
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": mapping(g)} for props, g in items]}


def fixture_index(order, with_outline=True):
    beats = fc([({"code": c, "street_code": BEATS[c][1]}, BEATS[c][0]) for c in order])
    district = fc([({"code": "D", "name": "fixture"}, OUTLINE)]) if with_outline else None
    return BeatIndex.from_geojson(beats, district)


ORDERS = ["AHELR", "RLEHA"]


@pytest.mark.parametrize("order", ORDERS)
def test_islands_holes_and_enclaves(order):
    index = fixture_index(order)
    assert len(index) == 5
    assert index.locate(*xy(0.4, -0.8)) == Placement(*xy(0.4, -0.8), "A", "S1", True)  # island
    assert index.locate(*xy(0.5, 0.5)).beat_code == "A"
    # in the hole: the enclave, whichever comes first (the host's envelope covers the hole)
    assert index.locate(*xy(1.5, 0.5)) == Placement(*xy(1.5, 0.5), "E", "S2", True)
    assert index.locate(*xy(1.1, 0.5)).beat_code == "H"  # host ring
    assert index.locate(*xy(1.9, 0.9)).beat_code == "H"


@pytest.mark.parametrize("order", ORDERS)
def test_shared_edge_goes_to_the_lowest_index(order):
    index = fixture_index(order)
    edge = xy(2.0, 0.5)
    assert shapely.intersects(BEATS["H"][0], shapely.Point(edge))
    assert shapely.intersects(BEATS["L"][0], shapely.Point(edge))
    expected = "H" if order.index("H") < order.index("L") else "L"
    assert index.locate(*edge).beat_code == expected
    assert index.locate_many([edge[0]], [edge[1]])[0].beat_code == expected


def test_outside_the_district():
    index = fixture_index("AHELR")
    for lon, lat in [xy(0.4, -0.3), xy(-0.5, 0.5), (121.0, 37.0)]:  # the sea to the island, west, far
        assert index.locate(lon, lat) == Placement(lon, lat, None, None, False)
    assert index.locate(math.nan, math.nan).in_jurisdiction is False


@pytest.mark.parametrize("with_outline", [True, False])
def test_hairline_gap_goes_to_the_nearest_beat(with_outline):
    index = fixture_index("AHELR", with_outline)
    lat = Y0 + 0.5 * S
    near_l, near_r = X0 + 3 * S + 0.25 * GAP, X0 + 3 * S + 0.75 * GAP
    geoms = [g for g, _ in BEATS.values()]
    for lon in (near_l, near_r):  # really in the gap: no beat contains it
        assert not shapely.intersects(geoms, shapely.Point(lon, lat)).any()
    assert index.locate(near_l, lat) == Placement(near_l, lat, "L", "S2", True)
    assert index.locate(near_r, lat) == Placement(near_r, lat, "R", "S2", True)


def test_inside_the_outline_but_far_from_any_beat():
    # a gap in the beat data, not a rounding sliver: ours, but no squad owns it
    index = fixture_index("AHELR")
    lon, lat = xy(4.25, 0.5)
    assert index.locate(lon, lat) == Placement(lon, lat, None, None, True)
    assert index.locate(*xy(4.0 + SLIVER_DEG / S / 2, 0.5)).beat_code == "R"
    # without an outline the union of the beats is the district: the strip is outside
    assert fixture_index("AHELR", with_outline=False).locate(lon, lat).in_jurisdiction is False


@pytest.mark.parametrize("with_outline", [True, False])
def test_locate_many_equals_locate(with_outline):
    index = fixture_index("AHELR", with_outline)
    rng = np.random.default_rng(3)
    lons = np.concatenate([rng.uniform(X0 - 0.2 * S, X0 + 4.7 * S, 3000),
                           X0 + 3 * S + rng.uniform(0, GAP, 200)])
    lats = np.concatenate([rng.uniform(Y0 - 1.2 * S, Y0 + 1.2 * S, 3000), rng.uniform(Y0, Y0 + S, 200)])
    many = index.locate_many(lons, lats)
    assert many == [index.locate(x, y) for x, y in zip(lons.tolist(), lats.tolist())]
    assert {p.beat_code for p in many} == {"A", "H", "E", "L", "R", None}
    assert index.locate_many([], []) == []


def test_empty_or_non_polygonal_beats():
    assert len(BeatIndex.from_geojson(fc([]))) == 0
    assert BeatIndex.from_geojson(fc([])).locate(120.3, 36.0).in_jurisdiction is False
    with pytest.raises(ValueError, match="'P'"):
        BeatIndex.from_geojson(fc([({"code": "P"}, shapely.Point(120.3, 36.0))]))


# ---------------------------------------------------------------- the district the run stands on
# The shared sample district, else our own generator's (tests.data.district_dir); the tests that hold
# placements against the shared truth file fail without it.
def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def district_index():
    beats = json.loads((district_dir() / "beats.geojson").read_text(encoding="utf-8"))
    district = json.loads((district_dir() / "district.geojson").read_text(encoding="utf-8"))
    return BeatIndex.from_geojson(beats, district)


@pytest.fixture(scope="module")
def accepted_leads():
    leads, truths = read_jsonl(shared_file("leads.jsonl")), read_jsonl(shared_file("leads_truth.jsonl"))
    assert len(leads) == len(truths)
    rows = [(lead, t) for lead, t in zip(leads, truths) if t["verdict"] == "accept"]
    assert len(rows) > 0.9 * len(leads)
    return rows


def test_shared_district_shape(district_index):
    manifest = json.loads(shared_file("manifest.json").read_text(encoding="utf-8"))
    beats = json.loads((district_dir() / "beats.geojson").read_text(encoding="utf-8"))["features"]
    geoms = [shapely.geometry.shape(f["geometry"]) for f in beats]
    assert len(district_index) == len(beats) == manifest["beats"]
    # the data really exercises islands and a hole, so the fixtures above are not theory
    assert sum(g.geom_type == "MultiPolygon" for g in geoms) == manifest["multipolygon_beats"] >= 1
    assert sum(len(g.interiors) for g in geoms if g.geom_type == "Polygon") >= 1


def test_every_squad_home_lies_in_its_own_beat(district_index):
    teams = json.loads((district_dir() / "teams.json").read_text(encoding="utf-8"))
    wrong = [(t["beat_code"], district_index.locate(t["home"]["lon"], t["home"]["lat"]).beat_code)
             for t in teams if district_index.locate(t["home"]["lon"], t["home"]["lat"]).beat_code != t["beat_code"]]
    assert not wrong


def test_accepted_leads_are_placed_as_the_truth_says(district_index, accepted_leads):
    errors, mismatches = [], []
    for lineno, (lead, truth) in enumerate(accepted_leads):
        loc = lead["location"]
        lon, lat = to_wgs84(loc["lon"], loc["lat"], loc["crs"])
        errors.append((haversine_m(lon, lat, truth["true_lon"], truth["true_lat"]), loc["crs"], lead["source_id"]))
        p = district_index.locate(lon, lat)
        got = (p.beat_code, p.street_code, p.in_jurisdiction)
        want = (truth["beat_code"], truth["street_code"], truth["in_jurisdiction"])
        if got != want:
            mismatches.append((lead["source_id"], loc["crs"], got, want))
    n = len(accepted_leads)
    worst = max(errors)
    print(f"\n{n} accepted leads; worst WGS-84 error {worst[0]:.4f} m ({worst[1]}, {worst[2]}); "
          f"{len(mismatches)} placement mismatches: {mismatches[:10]}")
    assert sum(e < 0.5 for e, _, _ in errors) >= 0.999 * n
    assert len(mismatches) <= 0.001 * n
    assert sum(t["in_jurisdiction"] for _, t in accepted_leads) < n  # the set has outsiders to get right


@pytest.mark.parametrize("crs", ["gcj02", "bd09"])
def test_offset_points_read_as_wgs84_land_in_wrong_beats(district_index, accepted_leads, crs):
    # shows the test above has teeth: skipping the conversion misplaces most of them
    rows = [(lead["location"], t) for lead, t in accepted_leads
            if lead["location"]["crs"] == crs and t["in_jurisdiction"]]
    assert len(rows) > 100
    wrong = sum(district_index.locate(loc["lon"], loc["lat"]).beat_code != t["beat_code"] for loc, t in rows)
    print(f"\n{crs} read as WGS-84: {wrong}/{len(rows)} in the wrong beat")
    assert wrong > 0.5 * len(rows)


def test_locate_many_equals_locate_on_the_district(district_index):
    beats = json.loads((district_dir() / "beats.geojson").read_text(encoding="utf-8"))
    minx, miny, maxx, maxy = shapely.total_bounds([shapely.geometry.shape(f["geometry"]) for f in beats["features"]])
    rng = np.random.default_rng(11)
    lons, lats = rng.uniform(minx - 0.01, maxx + 0.01, 5000), rng.uniform(miny - 0.01, maxy + 0.01, 5000)
    many = district_index.locate_many(lons, lats)
    assert many == [district_index.locate(x, y) for x, y in zip(lons.tolist(), lats.tolist())]
    inside = sum(p.in_jurisdiction for p in many)
    assert 0 < inside < len(many)
