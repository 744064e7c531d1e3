"""Leads of our own making (beside the shared district's), valid unless a test breaks them."""
from __future__ import annotations

import itertools
import uuid

_seq = itertools.count(1)
_KEEP = object()

# A point of the shared district, as its truth file places it (WGS-84).
INSIDE = {"lon": 120.3433047, "lat": 36.0469994, "beat": "370299009-03", "street": "370299009"}
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
