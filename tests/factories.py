"""Leads of our own making (beside the shared district's), valid unless a test breaks them."""
from __future__ import annotations

import itertools
import json
import uuid

import shapely
from shapely.geometry import shape

from tests.data import SHARED_DISTRICT

_seq = itertools.count(1)
_KEEP = object()


def _inside() -> dict:
    """The first in-district lead of the shared truth file: a place whose beat someone else decided.
    Read, not hard-coded, so the suite runs on any district shaped like it."""
    with (SHARED_DISTRICT / "leads_truth.jsonl").open(encoding="utf-8") as f:
        for line in f:
            t = json.loads(line)
            if t["verdict"] == "accept" and t["in_jurisdiction"]:
                return {"lon": t["true_lon"], "lat": t["true_lat"], "beat": t["beat_code"],
                        "street": t["street_code"], "team": f"T{t['beat_code']}"}
    raise LookupError("no in-district lead in the shared truth file")


def _outside() -> dict:
    """A point well beyond the district's outline."""
    outline = json.loads((SHARED_DISTRICT / "district.geojson").read_text(encoding="utf-8"))
    minx, miny, maxx, maxy = shapely.unary_union([shape(f["geometry"]) for f in outline["features"]]).bounds
    return {"lon": maxx + (maxx - minx), "lat": maxy + (maxy - miny)}


INSIDE = _inside() if SHARED_DISTRICT.exists() else {"lon": 0.0, "lat": 0.0, "beat": None, "street": None,
                                                     "team": None}
OUTSIDE = _outside() if SHARED_DISTRICT.exists() else {"lon": 0.0, "lat": 0.0}
VALID_ID = "370299198904085688"  # GB 11643 check digit right


def make_lead(*, subject: dict | None = None, location=_KEEP, **top) -> dict:
    """A valid lead; `subject` and `location` dicts are merged, other keywords replace top-level fields."""
    n = next(_seq)
    lead = {
        "source": "national_platform", "source_id": f"T-{uuid.uuid4().hex[:12]}-{n}",
        "pushed_at": "2026-11-01T09:30:00+08:00", "warning_type": "fraud_call", "fraud_type": "fake_investment",
        "risk_level": 2,
        "subject": {"phone": f"139{n:08d}", "name": "测试人", "id_number": VALID_ID, "residency": "resident"},
        "counterpart": {"phone": "+85512345678"}, "amount_cny": None,
        "location": {"lon": INSIDE["lon"], "lat": INSIDE["lat"], "crs": "wgs84", "accuracy_m": 10, "kind": "gps"},
    }
    lead["subject"].update(subject or {})
    if location is not _KEEP:
        lead["location"] = None if location is None else {**lead["location"], **location}
    lead.update(top)
    return lead
