"""`quanzu gen-district`: our own sample district, loadable and shaped like a real one."""
from __future__ import annotations

import json
import subprocess
import sys

import shapely
from shapely.geometry import shape

from dispatch.identity import normalize_phone
from geo.beats import BeatIndex
from geo.district import load_district_dir
from service.tools.gen_district import DistrictSpec, generate
from tests.data import ROOT


def test_gen_district_writes_a_district_the_importer_reads(tmp_path):
    out = subprocess.run([sys.executable, "-m", "service.cli", "gen-district", str(tmp_path / "d")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = load_district_dir(tmp_path / "d")
    assert data.name == "锦城区" and len(data.streets) == 8 and len(data.beats) > 50
    assert len(data.teams) == len(data.beats) and len(data.stations) == len(data.streets)


def test_same_seed_same_district_and_another_seed_another():
    a, b, c = generate(), generate(), generate(DistrictSpec(seed=16))
    assert json.dumps(a, ensure_ascii=False) == json.dumps(b, ensure_ascii=False)
    assert a["beats.geojson"] != c["beats.geojson"]


def test_beats_tile_the_district_with_an_island_a_hole_and_an_enclave():
    files = generate()
    outline = shape(files["district.geojson"]["features"][0]["geometry"])
    beats = {f["properties"]["code"]: shape(f["geometry"]) for f in files["beats.geojson"]["features"]}
    assert all(g.is_valid for g in beats.values())
    union = shapely.union_all(list(beats.values()))
    assert outline.symmetric_difference(union).area / outline.area < 1e-4       # no gaps
    assert (sum(g.area for g in beats.values()) - union.area) / union.area < 1e-4  # no overlaps
    islands = [c for c, g in beats.items() if g.geom_type == "MultiPolygon"]
    holed = [c for c, g in beats.items() if g.geom_type == "Polygon" and g.interiors]
    assert islands and holed
    hole = shapely.Polygon(beats[holed[0]].interiors[0])
    enclave = [c for c, g in beats.items() if c != holed[0] and g.within(hole.buffer(1e-6))]
    assert len(enclave) == 1

    # the beat index (the one the worker places leads with) puts the enclave's point in the enclave
    index = BeatIndex.from_geojson(files["beats.geojson"], files["district.geojson"])
    p = beats[enclave[0]].representative_point()
    assert index.locate(p.x, p.y).beat_code == enclave[0]
    island = min(beats[islands[0]].geoms, key=lambda g: g.area).representative_point()
    assert index.locate(island.x, island.y).beat_code == islands[0]


def test_squads_have_members_with_chinese_names_and_valid_phones():
    files = generate()
    beat_codes = {f["properties"]["code"] for f in files["beats.geojson"]["features"]}
    phones = []
    for team in files["teams.json"]:
        assert team["beat_code"] in beat_codes
        assert [m["role"] for m in team["members"]] == ["police", "auxiliary", "grid_worker"]
        for m in team["members"]:
            assert 2 <= len(m["name"]) <= 3 and all("\u4e00" <= ch <= "\u9fff" for ch in m["name"])
            assert normalize_phone(m["phone"]) == m["phone"]
            phones.append(m["phone"])
        assert team["members"][0]["badge_no"].isdigit()
    assert len(phones) == len(set(phones))
