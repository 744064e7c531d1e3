"""validate_lead for any JSON value: a lead or field errors, never an exception; and every
accepted value fits its column (the extremes of each field)."""
from __future__ import annotations

import copy

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dispatch.intake.repository import lead_row
from dispatch.intake.schemas import LEAD_EXAMPLE
from dispatch.intake.storable import storable_body
from dispatch.intake.validation import validate_lead

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)
FIELDS = ["source", "source_id", "pushed_at", "warning_type", "fraud_type", "risk_level", "subject", "counterpart",
          "amount_cny", "location", "ongoing"]


def _check(obj: object) -> None:
    checked = validate_lead(obj)
    assert (checked.lead is None) == bool(checked.errors)
    for e in checked.errors:
        assert isinstance(e.field, str) and isinstance(e.message, str)
    if checked.lead is not None:
        lead_row(checked.lead, checked.flags)  # what goes to PostgreSQL can be built


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(json_values)
def test_any_json_value_gives_a_lead_or_errors(obj) -> None:
    _check(obj)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(FIELDS + ["subject.phone", "subject.name", "subject.id_number",
                                                    "location.lon", "location.lat", "location.accuracy_m",
                                                    "location.crs", "counterpart.x"]), json_values), max_size=4))
def test_any_value_in_any_field_of_a_valid_lead(changes) -> None:
    d = copy.deepcopy(LEAD_EXAMPLE)
    for path, value in changes:
        target = d
        *parents, last = path.split(".")
        for p in parents:
            if not isinstance(target.get(p), dict):
                target[p] = {}
            target = target[p]
        target[last] = value
    _check(d)


def _verdict(c) -> tuple:
    return c.lead, sorted((e.field, e.message) for e in c.errors), c.flags


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.tuples(st.sampled_from(["source_id", "subject.name", "subject.phone", "counterpart.x",
                                           "counterpart.y", "location.address", "fraud_type"]),
                          json_values | st.sampled_from(["a\x00b", "\\u0000", "\x00", "x\\"])), max_size=3))
def test_the_one_scan_of_a_body_gives_the_verdict_of_the_per_lead_pass(changes) -> None:
    """The push routes skip the per-lead storability pass when one scan of the body proves it
    (`storable_body`): for every body orjson reads, the verdict is the same either way."""
    d = copy.deepcopy(LEAD_EXAMPLE)
    for path, value in changes:
        target = d
        *parents, last = path.split(".")
        for p in parents:
            target = target.setdefault(p, {}) if isinstance(target.get(p, {}), dict) else {}
        target[last] = value
    try:
        body = orjson.dumps(d)
    except orjson.JSONEncodeError:
        return  # not a body anybody can send
    obj = orjson.loads(body)
    assert _verdict(validate_lead(obj, storable_body(body))) == _verdict(validate_lead(obj))


def test_a_body_with_a_nul_anywhere_is_not_proved_storable() -> None:
    assert storable_body(orjson.dumps(_lead(subject__name="a\x00b"))) is False
    assert storable_body(orjson.dumps(_lead(counterpart={"k\x00": 1}))) is False
    assert storable_body(orjson.dumps(_lead())) is True


def _lead(**changes) -> dict:
    d = copy.deepcopy(LEAD_EXAMPLE)
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = d
        for p in parents:
            target = target[p]
        target[last] = value
    return d


def _deep(n: int) -> object:
    v: object = "x"
    for _ in range(n):
        v = {"a": v}
    return v


@pytest.mark.parametrize(("changes", "field"), [
    ({"amount_cny": 1e12}, "amount_cny"),
    ({"amount_cny": 999999999999.999}, "amount_cny"),
    ({"amount_cny": 10**30}, "amount_cny"),
    ({"amount_cny": float("inf")}, "amount_cny"),
    ({"amount_cny": float("nan")}, "amount_cny"),
    ({"location__lon": float("nan")}, "location.lon"),
    ({"location__accuracy_m": 1e20}, "location.accuracy_m"),
    ({"location__accuracy_m": float("inf")}, "location.accuracy_m"),
    ({"pushed_at": "0001-01-01T00:00:00+05:00"}, "pushed_at"),
    ({"pushed_at": "9999-12-31T23:59:59-23:59"}, "pushed_at"),
    ({"pushed_at": "1900-01-01T00:00:00+08:00"}, "pushed_at"),
    ({"subject__name": "名" * 101}, "subject.name"),
    ({"subject__id_number": "1" * 33}, "subject.id_number"),
    ({"subject__phone": "1" * 41}, "subject.phone"),
    ({"subject__name": "a\ud800b"}, "subject.name"),
    ({"subject__name": "a\x00b"}, "subject.name"),
    ({"counterpart": {"k": "a\x00"}}, "counterpart.k"),
    ({"counterpart": {"k\x00": 1}}, "counterpart.k\x00"),
    ({"counterpart": {"k": [1, "\udfff"]}}, "counterpart.k.1"),
    ({"counterpart": _deep(9)}, "counterpart"),
    ({"counterpart": _deep(5000)}, "counterpart"),
    ({"counterpart": {str(i): i for i in range(201)}}, "counterpart"),
    ({"counterpart": {"k": "x" * 20000}}, "counterpart"),
    ({"counterpart": {"k": 2**70}}, "counterpart"),
    ({"counterpart": {"k": [1e20]}}, "counterpart"),
    ({"counterpart": {"k": -(2**63)}}, "counterpart"),
    ({"risk_level": "1" * 5000}, "risk_level"),
])
def test_values_no_column_holds_are_refused_naming_the_field(changes, field) -> None:
    checked = validate_lead(_lead(**changes))
    assert checked.lead is None
    assert field in [e.field for e in checked.errors]


@pytest.mark.parametrize("changes", [
    {"amount_cny": 999999999999.99}, {"amount_cny": 0}, {"pushed_at": "1970-01-01T08:00:00+08:00"},
    {"pushed_at": "2199-12-31T23:59:59+23:59"}, {"pushed_at": "2026-10-01T00:00:00-23:59"},
    {"subject__name": "名" * 100}, {"counterpart": _deep(7)}, {"location__accuracy_m": 0},
])
def test_extremes_that_fit_are_accepted(changes) -> None:
    checked = validate_lead(_lead(**changes))
    assert checked.errors == []
