"""/api/v1/geo over the imported district; locate against the shared truth file."""
from __future__ import annotations

import json

import pytest

from geo.crs import from_wgs84
from tests.data import shared_file

pytestmark = pytest.mark.usefixtures("district")


async def test_beats_and_streets_are_geojson(client, commander, district):
    beats = (await client.get("/api/v1/geo/beats", headers=commander)).json()
    streets = (await client.get("/api/v1/geo/streets", headers=commander)).json()
    assert beats["type"] == streets["type"] == "FeatureCollection"
    assert sorted(f["properties"]["code"] for f in beats["features"]) == \
           sorted(b["properties"]["code"] for b in district.beats)
    assert len(streets["features"]) == len(district.streets)
    kinds = {f["geometry"]["type"] for f in beats["features"]}
    assert kinds == {"Polygon", "MultiPolygon"}  # islands survive the round trip


async def test_locate_normalises_each_crs(client, commander):
    with shared_file("leads_truth.jsonl").open(encoding="utf-8") as f:
        truth = [json.loads(line) for line in f]
    sample = [t for t in truth if t["verdict"] == "accept"][:30]
    for crs in ("wgs84", "gcj02", "bd09"):
        for t in sample:
            lon, lat = from_wgs84(t["true_lon"], t["true_lat"], crs)
            r = (await client.get("/api/v1/geo/locate", params={"lon": lon, "lat": lat, "crs": crs},
                                  headers=commander)).json()
            assert (r["beat_code"], r["street_code"], r["in_jurisdiction"]) == \
                   (t["beat_code"], t["street_code"], t["in_jurisdiction"]), (crs, t)
            assert abs(r["lon"] - t["true_lon"]) < 1e-6 and abs(r["lat"] - t["true_lat"]) < 1e-6


async def test_locate_refuses_bad_input_naming_the_field(client, commander, source_headers):
    bad_crs = await client.get("/api/v1/geo/locate?lon=120.3&lat=36.0&crs=epsg4326", headers=commander)
    assert bad_crs.status_code == 422 and bad_crs.json()["detail"][0]["field"] == "crs"
    bad_lat = await client.get("/api/v1/geo/locate?lon=120.3&lat=136.0", headers=commander)
    assert bad_lat.status_code == 422 and bad_lat.json()["detail"][0]["field"] == "lat"
    assert (await client.get("/api/v1/geo/locate?lon=120.3&lat=36.0")).status_code == 401
    far = (await client.get("/api/v1/geo/locate?lon=116.4&lat=39.9", headers=source_headers)).json()
    assert far["in_jurisdiction"] is False and far["beat_code"] is None
