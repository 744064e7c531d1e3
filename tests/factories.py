"""Leads of our own making (beside the shared district's), valid unless a test breaks them, placed in the
district the run stands on (tests.data.district_dir)."""
from __future__ import annotations

import itertools
import json
import uuid
from datetime import date, timedelta

import shapely
from shapely.geometry import shape
from sqlalchemy import text

from tests.data import district_dir

_seq = itertools.count(1)
_KEEP = object()
_DISTRICT = district_dir()


def _inside() -> dict:
    """A place in a beat of the district the run stands on. With a truth file (the shared district):
    its first in-district lead, a place whose beat someone else decided. Without (our own district):
    a point well inside the first beat that is one plain polygon, away from its squad's home."""
    truth = _DISTRICT / "leads_truth.jsonl"
    if truth.is_file():
        with truth.open(encoding="utf-8") as f:
            for line in f:
                t = json.loads(line)
                if t["verdict"] == "accept" and t["in_jurisdiction"]:
                    return {"lon": t["true_lon"], "lat": t["true_lat"], "beat": t["beat_code"],
                            "street": t["street_code"], "team": f"T{t['beat_code']}"}
        raise LookupError(f"no in-district lead in {truth}")
    beats = json.loads((_DISTRICT / "beats.geojson").read_text(encoding="utf-8"))["features"]
    teams = {t["beat_code"]: t["code"] for t in json.loads((_DISTRICT / "teams.json").read_text(encoding="utf-8"))}
    for f in sorted(beats, key=lambda f: f["properties"]["code"]):
        beat = shape(f["geometry"])
        if beat.geom_type != "Polygon" or beat.interiors or f["properties"]["code"] not in teams:
            continue
        core = beat.buffer(-0.0005)  # ~50 m in from every edge: no rounding puts it in a neighbour
        point = core.centroid if core.contains(core.centroid) else core.representative_point()
        return {"lon": round(point.x, 7), "lat": round(point.y, 7), "beat": f["properties"]["code"],
                "street": f["properties"]["street_code"], "team": teams[f["properties"]["code"]]}
    raise LookupError(f"no beat of one plain polygon with a squad in {_DISTRICT}")


def _outside() -> dict:
    """A point well beyond the district's outline."""
    outline = json.loads((_DISTRICT / "district.geojson").read_text(encoding="utf-8"))
    minx, miny, maxx, maxy = shapely.unary_union([shape(f["geometry"]) for f in outline["features"]]).bounds
    return {"lon": maxx + (maxx - minx), "lat": maxy + (maxy - miny)}


INSIDE = _inside()
OUTSIDE = _outside()
VALID_ID = "370299198904085688"  # GB 11643 check digit right
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def id_number(n: int, born: date = date(1980, 1, 1)) -> str:
    """The n-th valid ID number (GB 11643, check digit right) of people born from `born` on (one a
    day, 1,000 a day): each lead of ours is its own person unless a test says otherwise."""
    body = f"370299{born + timedelta(days=n // 1000):%Y%m%d}{n % 1000:03d}"
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, _WEIGHTS)) % 11]


def make_lead(*, subject: dict | None = None, location=_KEEP, **top) -> dict:
    """A valid lead about a person of its own (phone and ID number its own); `subject` and `location`
    dicts are merged, other keywords replace top-level fields."""
    n = next(_seq)
    lead = {
        "source": "national_platform", "source_id": f"T-{uuid.uuid4().hex[:12]}-{n}",
        "pushed_at": "2026-11-01T09:30:00+08:00", "warning_type": "fraud_call", "fraud_type": "fake_investment",
        "risk_level": 2,
        "subject": {"phone": f"139{n:08d}", "name": "测试人", "id_number": id_number(n), "residency": "resident"},
        "counterpart": {"phone": "+85512345678"}, "amount_cny": None,
        "location": {"lon": INSIDE["lon"], "lat": INSIDE["lat"], "crs": "wgs84", "accuracy_m": 10, "kind": "gps"},
    }
    lead["subject"].update(subject or {})
    if location is not _KEEP:
        lead["location"] = None if location is None else {**lead["location"], **location}
    lead.update(top)
    return lead


def insert_tiered_lead(conn, source_id: str, *, warning_type: str = "fund_transfer", risk_level: int = 1,
                       tier: str | None = "P0") -> int:
    """A lead row as a worker leaves a tiered one, written straight into `lead` (source `test`), for
    tests of what comes after tiering → its id."""
    return conn.execute(text(
        "INSERT INTO lead (source, source_id, pushed_at, received_at, warning_type, fraud_type, risk_level, "
        "status, tier, flags, counterpart, attempts, needs_call, updated_at, ongoing, residency) "
        "VALUES ('test', :sid, now(), now(), :wt, 'other', :risk, 'tiered', :tier, '[]', '{}', 0, false, now(), "
        "false, 'unknown') RETURNING id"), {"sid": source_id, "wt": warning_type, "risk": risk_level, "tier": tier}
    ).scalar()
