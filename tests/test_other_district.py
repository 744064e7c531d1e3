"""Not tuned to one district: a second one, generated differently (more beats, islands and
enclaves, another city and region code), must validate and place as its own truth says."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from dispatch.intake.validation import validate_lead
from geo.beats import BeatIndex
from geo.crs import to_wgs84
from tests.data import shared_tool


@pytest.fixture(scope="module")
def other(tmp_path_factory):
    generator = shared_tool("gen_district.py")  # ../shared/tools, beside the shared data
    out = tmp_path_factory.mktemp("other") / "district"
    subprocess.run([sys.executable, str(generator), str(out), "--seed", "41", "--beats", "360", "--streets", "15",
                    "--islands", "6", "--enclaves", "5", "--leads", "2500", "--center", "118.09,24.48",
                    "--radius-km", "7", "--region", "350203", "--name", "思明区"],
                   check=True, capture_output=True, timeout=120)
    return out


def _read(path):
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def test_generated_district_validates_and_places_as_its_truth_says(other):
    leads, truth = _read(other / "leads.jsonl"), _read(other / "leads_truth.jsonl")
    index = BeatIndex.from_geojson(json.loads((other / "beats.geojson").read_text(encoding="utf-8")),
                                   json.loads((other / "district.geojson").read_text(encoding="utf-8")))
    seen, wrong, accepted = set(), [], 0
    for lead, t in zip(leads, truth):
        checked = validate_lead(lead)
        key = (lead.get("source"), lead.get("source_id"))
        verdict = "reject" if checked.lead is None else ("duplicate" if key in seen else "accept")
        assert verdict == t["verdict"], (t, checked.errors)
        if verdict != "accept":
            continue
        seen.add(key)
        accepted += 1
        loc = checked.lead.location
        p = index.locate(*to_wgs84(loc.lon, loc.lat, loc.crs))
        if (p.beat_code, p.street_code, p.in_jurisdiction) != (t["beat_code"], t["street_code"], t["in_jurisdiction"]):
            wrong.append((t["source_id"], p.beat_code, t["beat_code"]))
    manifest = json.loads((other / "manifest.json").read_text(encoding="utf-8"))
    assert accepted == manifest["verdicts"]["accept"] and manifest["multipolygon_beats"] >= 3
    assert len(wrong) <= accepted * 0.001, wrong[:10]
