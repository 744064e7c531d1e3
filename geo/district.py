"""Loading and checking a district directory (the input of `quanzu import-district DIR`).

Pure: reads files, checks them, returns plain data; storing it is the importer's job.
Every problem raises `DistrictError` naming the file and the offending code, so an operator
can fix the data without reading a traceback.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import shapely
from shapely.geometry import shape


class DistrictError(ValueError):
    pass


@dataclass
class DistrictData:
    code: str
    name: str
    outline: dict  # district.geojson, a FeatureCollection
    streets: list[dict]  # Features
    beats: list[dict]  # Features
    stations: list[dict]
    teams: list[dict]


def load_district_dir(path: str | Path) -> DistrictData:
    root = Path(path)
    if not root.is_dir():
        raise DistrictError(f"{root}: not a directory")

    outline_file = root / "district.geojson"
    outline = _read_json(outline_file)
    district_features = _features(outline, outline_file)
    if not district_features:
        raise DistrictError(f"{outline_file}: no features; the first must be the district outline")
    props = district_features[0]["properties"]
    code, name = props.get("code"), props.get("name")
    for key, value in (("code", code), ("name", name)):
        if not isinstance(value, str) or not value:
            raise DistrictError(f"{outline_file}: the first feature needs a non-empty string property {key!r}")
    for i, f in enumerate(district_features):
        _check_polygonal(f, outline_file, f"feature {i}")

    streets_file = root / "streets.geojson"
    streets = _features(_read_json(streets_file), streets_file)
    street_codes = _unique_codes([f["properties"] for f in streets], streets_file, "street")
    for f in streets:
        if f.get("geometry") is not None:
            _check_polygonal(f, streets_file, f"street {f['properties']['code']!r}")

    stations_file = root / "stations.json"
    stations = _records(_read_json(stations_file), stations_file)
    station_codes = _unique_codes(stations, stations_file, "station")
    for s in stations:
        _check_ref(s, "street_code", street_codes, stations_file, "station", "a street in streets.geojson")
        for key in ("lon", "lat"):
            if key in s and not isinstance(s[key], (int, float)):
                raise DistrictError(f"{stations_file}: station {s['code']!r}: {key} must be a number")

    beats_file = root / "beats.geojson"
    beats = _features(_read_json(beats_file), beats_file)
    beat_codes = _unique_codes([f["properties"] for f in beats], beats_file, "beat")
    for f in beats:
        p = f["properties"]
        _check_ref(p, "street_code", street_codes, beats_file, "beat", "a street in streets.geojson")
        if p.get("station_code") is not None:
            _check_ref(p, "station_code", station_codes, beats_file, "beat", "a station in stations.json")
        _check_polygonal(f, beats_file, f"beat {p['code']!r}")

    teams_file = root / "teams.json"
    teams = _records(_read_json(teams_file), teams_file)
    _unique_codes(teams, teams_file, "team")
    for t in teams:
        _check_ref(t, "beat_code", beat_codes, teams_file, "team", "a beat in beats.geojson")
        if not isinstance(t.get("members", []), list):
            raise DistrictError(f"{teams_file}: team {t['code']!r}: members must be a list")

    return DistrictData(code=code, name=name, outline=outline, streets=streets, beats=beats,
                        stations=stations, teams=teams)


def _read_json(file: Path) -> Any:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DistrictError(f"{file}: missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DistrictError(f"{file}: cannot be read: {e}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise DistrictError(f"{file}: not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


def _features(doc: Any, file: Path) -> list[dict]:
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" \
            or not isinstance(doc.get("features"), list):
        raise DistrictError(f"{file}: expected a GeoJSON FeatureCollection with a 'features' list")
    for i, f in enumerate(doc["features"]):
        if not isinstance(f, dict) or not isinstance(f.get("properties"), dict):
            raise DistrictError(f"{file}: feature {i} has no 'properties' object")
    return doc["features"]


def _records(doc: Any, file: Path) -> list[dict]:
    if not isinstance(doc, list) or not all(isinstance(r, dict) for r in doc):
        raise DistrictError(f"{file}: expected a JSON list of objects")
    return doc


def _unique_codes(records: list[dict], file: Path, what: str) -> set[str]:
    seen: set[str] = set()
    for i, r in enumerate(records):
        code = r.get("code")
        if not isinstance(code, str) or not code:
            raise DistrictError(f"{file}: {what} {i} has no 'code'")
        if code in seen:
            raise DistrictError(f"{file}: duplicate {what} code {code!r}")
        seen.add(code)
    return seen


def _check_ref(record: dict, key: str, known: set[str], file: Path, what: str, target: str) -> None:
    value = record.get(key)
    if value not in known:
        raise DistrictError(f"{file}: {what} {record['code']!r} has {key} {value!r}, which is not {target}")


def _check_polygonal(feature: dict, file: Path, what: str) -> None:
    try:
        g = shape(feature.get("geometry") or {})
    except Exception as e:  # shapely raises a zoo of types for malformed GeoJSON
        raise DistrictError(f"{file}: {what}: unreadable geometry ({type(e).__name__}: {e})") from None
    if g.geom_type not in ("Polygon", "MultiPolygon") or g.is_empty:
        raise DistrictError(f"{file}: {what}: geometry must be a non-empty Polygon or MultiPolygon, "
                            f"not {g.geom_type}{' (empty)' if g.is_empty else ''}")
    if not g.is_valid:
        raise DistrictError(f"{file}: {what}: invalid geometry: {shapely.is_valid_reason(g)}")
