import json
from pathlib import Path

import pytest
from shapely.geometry import Polygon, box, mapping

from geo.district import DistrictData, DistrictError, load_district_dir
from tests.data import shared_file


def feature(props, geom):
    return {"type": "Feature", "properties": props, "geometry": mapping(geom)}


def write_district(root: Path) -> Path:
    """A tiny valid district: one street, two beats, one station, two squads."""
    west, east = box(120.30, 36.00, 120.31, 36.01), box(120.31, 36.00, 120.32, 36.01)
    docs = {
        "district.geojson": [feature({"code": "370299", "name": "滨海区"}, box(120.30, 36.00, 120.32, 36.01))],
        "streets.geojson": [feature({"code": "370299001", "name": "金湖街道"}, box(120.30, 36.00, 120.32, 36.01))],
        "beats.geojson": [
            feature({"code": "370299001-01", "name": "金湖第1警务区", "street_code": "370299001",
                     "station_code": "S370299001"}, west),
            feature({"code": "370299001-02", "name": "金湖第2警务区", "street_code": "370299001",
                     "station_code": "S370299001"}, east)],
    }
    for name, features in docs.items():
        (root / name).write_text(json.dumps({"type": "FeatureCollection", "features": features}), encoding="utf-8")
    (root / "stations.json").write_text(json.dumps([
        {"code": "S370299001", "name": "金湖派出所", "street_code": "370299001", "lon": 120.31, "lat": 36.005}]))
    (root / "teams.json").write_text(json.dumps([
        {"code": f"T{b}", "name": "劝阻分队", "beat_code": b, "home": {"lon": 120.305, "lat": 36.005},
         "members": [{"role": "police", "name": "吴英欣", "phone": "15812175294"}]}
        for b in ("370299001-01", "370299001-02")]))
    return root


def edit(root: Path, name: str, change) -> None:
    doc = json.loads((root / name).read_text(encoding="utf-8"))
    change(doc)
    (root / name).write_text(json.dumps(doc), encoding="utf-8")


def test_loads_a_valid_directory(tmp_path):
    d = load_district_dir(write_district(tmp_path))
    assert isinstance(d, DistrictData)
    assert (d.code, d.name) == ("370299", "滨海区")
    assert [b["properties"]["code"] for b in d.beats] == ["370299001-01", "370299001-02"]
    assert [t["beat_code"] for t in d.teams] == ["370299001-01", "370299001-02"]
    assert d.outline["type"] == "FeatureCollection" and len(d.streets) == len(d.stations) == 1


def test_loads_the_shared_sample_district():
    manifest_file = shared_file("manifest.json")
    d = load_district_dir(manifest_file.parent)
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    assert (d.code, d.name) == (manifest["args"]["region"], manifest["args"]["name"])
    assert (len(d.streets), len(d.beats), len(d.stations), len(d.teams)) == \
           (manifest["streets"], manifest["beats"], manifest["streets"], manifest["teams"])
    assert sum(b["geometry"]["type"] == "MultiPolygon" for b in d.beats) == manifest["multipolygon_beats"]


def test_missing_file_is_named(tmp_path):
    (write_district(tmp_path) / "teams.json").unlink()
    with pytest.raises(DistrictError, match=r"teams\.json: missing"):
        load_district_dir(tmp_path)


def test_not_a_directory(tmp_path):
    with pytest.raises(DistrictError, match="not a directory"):
        load_district_dir(tmp_path / "nowhere")


def test_bad_json_is_named_with_its_line(tmp_path):
    (write_district(tmp_path) / "stations.json").write_text('[\n{"code": "S1",}\n]')
    with pytest.raises(DistrictError, match=r"stations\.json: not valid JSON: .* line 2"):
        load_district_dir(tmp_path)


def test_beat_with_unknown_street_names_file_and_codes(tmp_path):
    edit(write_district(tmp_path), "beats.geojson",
         lambda doc: doc["features"][1]["properties"].update(street_code="370299999"))
    with pytest.raises(DistrictError) as e:
        load_district_dir(tmp_path)
    assert "beats.geojson" in str(e.value)
    assert "'370299001-02'" in str(e.value) and "'370299999'" in str(e.value)
    assert "not a street" in str(e.value)


def test_team_with_unknown_beat_names_file_and_codes(tmp_path):
    edit(write_district(tmp_path), "teams.json", lambda doc: doc[0].update(beat_code="370299001-09"))
    with pytest.raises(DistrictError, match=r"teams\.json: team 'T370299001-01' has beat_code '370299001-09'"):
        load_district_dir(tmp_path)


def test_invalid_geometry_is_named(tmp_path):
    bowtie = Polygon([(120.30, 36.00), (120.31, 36.01), (120.31, 36.00), (120.30, 36.01)])
    edit(write_district(tmp_path), "beats.geojson",
         lambda doc: doc["features"][0].update(geometry=mapping(bowtie)))
    with pytest.raises(DistrictError, match=r"beats\.geojson: beat '370299001-01': invalid geometry: Self-inter"):
        load_district_dir(tmp_path)


def test_point_geometry_for_a_beat_is_refused(tmp_path):
    edit(write_district(tmp_path), "beats.geojson",
         lambda doc: doc["features"][0].update(geometry={"type": "Point", "coordinates": [120.3, 36.0]}))
    with pytest.raises(DistrictError, match=r"beats\.geojson: beat '370299001-01': .*not Point"):
        load_district_dir(tmp_path)


def test_duplicate_beat_code(tmp_path):
    edit(write_district(tmp_path), "beats.geojson",
         lambda doc: doc["features"][1]["properties"].update(code="370299001-01"))
    with pytest.raises(DistrictError, match=r"beats\.geojson: duplicate beat code '370299001-01'"):
        load_district_dir(tmp_path)


def test_outline_without_code(tmp_path):
    edit(write_district(tmp_path), "district.geojson", lambda doc: doc["features"][0]["properties"].pop("code"))
    with pytest.raises(DistrictError, match=r"district\.geojson: .*'code'"):
        load_district_dir(tmp_path)
