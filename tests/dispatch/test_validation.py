"""validate_lead against the contract's rules and the independent sample district."""
from __future__ import annotations

import copy
import json
from datetime import date, datetime, timedelta, timezone

import pytest

from dispatch.enums import Flag, FraudType, Residency
from dispatch.identity import birth_date_from_id, id_number_valid, mask_id, mask_phone, normalize_phone
from dispatch.intake.schemas import LEAD_EXAMPLE, LeadIn
from dispatch.intake.validation import validate_lead
from tests.data import shared_file

VALID_ID = "11010519491231002X"  # the GB 11643 specimen: check digit X

HARD = {"no_source_id": "source_id", "bad_phone": "subject.phone", "lat_out_of_range": "location.lat",
        "unknown_crs": "location.crs", "bad_time": "pushed_at", "bad_risk": "risk_level",
        "negative_amount": "amount_cny", "no_contact": "subject.phone"}
SOFT = {"bad_fraud_type": Flag.fraud_type_unknown, "bad_id_checksum": Flag.id_number_invalid,
        "id_too_short": Flag.id_number_invalid}


def lead(**changes: object) -> dict:
    """The contract's example with a valid ID number; keys like subject__phone reach inside, ... deletes."""
    d = copy.deepcopy(LEAD_EXAMPLE)
    d["subject"]["id_number"] = VALID_ID
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = d
        for p in parents:
            target = target[p]
        if value is ...:
            target.pop(last, None)
        else:
            target[last] = value
    return d


def fields(obj: object) -> list[str]:
    return [e.field for e in validate_lead(obj).errors]


# ---------------------------------------------------------------- the sample district
@pytest.fixture(scope="module")
def district() -> list[tuple[dict, dict]]:
    with shared_file("leads.jsonl").open(encoding="utf-8") as f, \
            shared_file("leads_truth.jsonl").open(encoding="utf-8") as g:
        pairs = [(json.loads(a), json.loads(b)) for a, b in zip(f, g, strict=True)]
    assert pairs
    return pairs


def test_district_verdicts_match_truth(district: list[tuple[dict, dict]]) -> None:
    wrong = []
    for n, (raw, truth) in enumerate(district, 1):
        checked = validate_lead(raw)
        if (truth["verdict"] == "reject") != bool(checked.errors):
            wrong.append((n, truth["verdict"], truth["problems"], checked.errors))
        assert (checked.lead is None) == bool(checked.errors)
    assert not wrong, f"{len(wrong)} verdicts differ, first: {wrong[:3]}"


def test_district_problems_named(district: list[tuple[dict, dict]]) -> None:
    seen = set()
    for n, (raw, truth) in enumerate(district, 1):
        checked = validate_lead(raw)
        error_fields = {e.field for e in checked.errors}
        for problem in truth["problems"]:
            seen.add(problem)
            if problem in HARD:
                assert HARD[problem] in error_fields, (n, problem, checked.errors)
            else:
                assert SOFT[problem] in checked.flags, (n, problem, checked.flags)
        if checked.lead is not None and not truth["problems"]:
            assert Flag.id_number_invalid not in checked.flags, n
            assert Flag.fraud_type_unknown not in checked.flags, n
    assert seen == HARD.keys() | SOFT.keys()  # every kind of damage was exercised


# ---------------------------------------------------------------- accepted leads
def test_example_is_accepted_and_equals_a_validated_model() -> None:
    checked = validate_lead(lead())
    assert checked.errors == [] and checked.flags == []
    assert checked.lead == LeadIn.model_validate(lead())
    assert checked.lead.model_dump(mode="json")["pushed_at"] == "2026-10-01T00:06:49+08:00"


def test_contract_example_has_a_bad_check_digit_and_is_only_flagged() -> None:
    checked = validate_lead(copy.deepcopy(LEAD_EXAMPLE))
    assert checked.lead is not None and checked.flags == [Flag.id_number_invalid]
    assert checked.lead.subject.id_number == "370299198904085680"  # kept as pushed


def test_optional_fields_default() -> None:
    checked = validate_lead(lead(counterpart=..., amount_cny=..., ongoing=..., subject__residency=...,
                                 subject__name=..., subject__id_number=..., location__kind=...,
                                 location__accuracy_m=...))
    assert checked.errors == [] and checked.flags == []
    assert checked.lead is not None
    assert checked.lead.counterpart == {} and checked.lead.amount_cny is None and checked.lead.ongoing is False
    assert checked.lead.subject.residency is Residency.unknown
    assert checked.lead.location is not None and checked.lead.location.kind is None


@pytest.mark.parametrize("pushed, expected", [
    ("2026-10-01T00:06:49", datetime(2026, 10, 1, 0, 6, 49, tzinfo=timezone(timedelta(hours=8)))),
    ("2026-10-01 00:06:49", datetime(2026, 10, 1, 0, 6, 49, tzinfo=timezone(timedelta(hours=8)))),
    ("2026-09-30T16:06:49Z", datetime(2026, 9, 30, 16, 6, 49, tzinfo=timezone.utc)),
])
def test_pushed_at_naive_is_center_time(pushed: str, expected: datetime) -> None:
    at = validate_lead(lead(pushed_at=pushed)).lead.pushed_at
    assert at == expected and at.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize("raw, risk", [(1, 1), (3, 3), (2.0, 2)])
def test_risk_level_accepted(raw: object, risk: int) -> None:
    assert validate_lead(lead(risk_level=raw)).lead.risk_level == risk


@pytest.mark.parametrize("raw", ["2", True, 2.5])
def test_risk_level_is_a_json_integer_not_a_string(raw: object) -> None:
    checked = validate_lead(lead(risk_level=raw))
    assert checked.lead is None and [e.field for e in checked.errors] == ["risk_level"]


def test_soft_defects_are_flags() -> None:
    checked = validate_lead(lead(fraud_type="xyz_unknown", subject__residency="martian",
                                 subject__id_number="11010519491231002", location__kind="wifi"))
    assert checked.errors == []
    assert checked.flags == [Flag.fraud_type_unknown, Flag.id_number_invalid, Flag.residency_unknown,
                             Flag.location_kind_unknown]
    ld = checked.lead
    assert ld.fraud_type is FraudType.other and ld.fraud_type_raw == "xyz_unknown"
    assert ld.subject.residency is Residency.unknown and ld.subject.id_number == "11010519491231002"
    missing = validate_lead(lead(fraud_type=...))
    assert missing.flags == [Flag.fraud_type_unknown] and missing.lead.fraud_type_raw is None


def test_no_location_is_a_flag_when_there_is_a_phone() -> None:
    checked = validate_lead(lead(location=None))
    assert checked.errors == [] and checked.flags == [Flag.no_location] and checked.lead.location is None


def test_crs_spelling_is_normalised() -> None:
    assert validate_lead(lead(location__crs=" WGS84")).lead.location.crs == "wgs84"


# ---------------------------------------------------------------- hard defects
@pytest.mark.parametrize("changes, field", [
    ({"source_id": ...}, "source_id"),
    ({"source_id": ""}, "source_id"),
    ({"source_id": "   "}, "source_id"),
    ({"source_id": 42}, "source_id"),
    ({"source_id": "x" * 129}, "source_id"),
    ({"source": "wechat"}, "source"),
    ({"source": ...}, "source"),
    ({"pushed_at": ...}, "pushed_at"),
    ({"pushed_at": "yesterday 3pm"}, "pushed_at"),
    ({"pushed_at": 1759248409}, "pushed_at"),
    ({"warning_type": "fraud_fax"}, "warning_type"),
    ({"risk_level": 0}, "risk_level"),
    ({"risk_level": 4}, "risk_level"),
    ({"risk_level": 7}, "risk_level"),
    ({"risk_level": "high"}, "risk_level"),
    ({"risk_level": True}, "risk_level"),
    ({"risk_level": 1.5}, "risk_level"),
    ({"risk_level": ...}, "risk_level"),
    ({"amount_cny": -0.01}, "amount_cny"),
    ({"amount_cny": "100"}, "amount_cny"),
    ({"amount_cny": float("nan")}, "amount_cny"),
    ({"location": 5}, "location"),
    ({"location": []}, "location"),
    ({"location__lon": "x"}, "location.lon"),
    ({"location__lon": ...}, "location.lon"),
    ({"location__lon": 180.5}, "location.lon"),
    ({"location__lat": 136.05}, "location.lat"),
    ({"location__lat": -90.01}, "location.lat"),
    ({"location__lat": True}, "location.lat"),
    ({"location__crs": "epsg:9999"}, "location.crs"),
    ({"location__crs": ...}, "location.crs"),
    ({"location__crs": 4326}, "location.crs"),
    ({"location__accuracy_m": -5}, "location.accuracy_m"),
    ({"location__kind": 3}, "location.kind"),
    ({"subject__phone": "1663957"}, "subject.phone"),
    ({"subject__phone": "12345678901"}, "subject.phone"),
    ({"subject__phone": 16639577231}, "subject.phone"),
    ({"subject__phone": None, "location": None}, "subject.phone"),
    ({"subject__phone": ..., "location": ...}, "subject.phone"),
    ({"subject__phone": "  ", "location": None}, "subject.phone"),
    ({"subject__name": 7}, "subject.name"),
    ({"subject__id_number": 110105194912310020}, "subject.id_number"),
    ({"subject__residency": ["resident"]}, "subject.residency"),
    ({"counterpart": "+855 12345678"}, "counterpart"),
    ({"fraud_type": 3}, "fraud_type"),
    ({"ongoing": "yes"}, "ongoing"),
])
def test_hard_defect_names_field(changes: dict, field: str) -> None:
    checked = validate_lead(lead(**changes))
    assert checked.lead is None
    assert [e.field for e in checked.errors] == [field], checked.errors
    assert all(e.message for e in checked.errors)


def test_no_contact_message() -> None:
    [error] = validate_lead(lead(subject__phone=None, location=None)).errors
    assert "neither phone nor location" in error.message


@pytest.mark.parametrize("body", [None, [], [lead()], "lead", 42, True])
def test_body_must_be_an_object(body: object) -> None:
    assert fields(body) == [""]


def test_subject_not_an_object_is_treated_as_empty() -> None:
    assert fields(lead(subject=[], location=None)) == ["subject.phone"]
    checked = validate_lead(lead(subject=[]))  # still reachable where the location says
    assert checked.errors == [] and checked.lead.subject.phone is None
    assert fields(lead(subject=..., location=None)) == ["subject.phone"]


def test_all_hard_errors_are_collected() -> None:
    got = fields(lead(source_id=..., pushed_at="soon", risk_level="high", amount_cny=-1,
                      location__lon="x", location__lat=99, location__crs="utm", subject__phone="110"))
    assert got == ["source_id", "pushed_at", "risk_level", "amount_cny", "subject.phone",
                   "location.lon", "location.lat", "location.crs"]


SAMPLES = [None, True, 0, -1, 1.5, float("inf"), "", "x", [], {}, [1], {"a": 1}]


def _paths(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out.append(prefix + k)
        if isinstance(v, dict):
            out += _paths(v, prefix + k + "__")
    return out


@pytest.mark.parametrize("path", _paths(lead()))
def test_wrong_types_never_raise(path: str) -> None:
    for sample in SAMPLES:
        checked = validate_lead(lead(**{path: copy.deepcopy(sample)}))
        assert (checked.lead is None) == bool(checked.errors)
        assert all(isinstance(e.field, str) and e.message for e in checked.errors)


# ---------------------------------------------------------------- phones, IDs, masks
@pytest.mark.parametrize("raw, normal", [
    ("13812345678", "13812345678"),
    ("+86 138-1234-5678", "13812345678"),
    ("+8613812345678", "13812345678"),
    ("86 13812345678", "13812345678"),
    ("0086-138 1234 5678", "13812345678"),
    ("0532-88886666", "053288886666"),
    ("(0532) 8888 6666", "053288886666"),
    ("010-12345678", "01012345678"),
    ("+86 532 88886666", "053288886666"),
    ("12812345678", None),
    ("1381234567", None),
    ("138123456789", None),
    ("1663957", None),
    ("110", None),
    ("phone", None),
    ("１３８１２３４５６７８", None),  # full-width digits are not quietly stored
])
def test_normalize_phone(raw: str, normal: str | None) -> None:
    assert normalize_phone(raw) == normal


def test_phone_is_stored_normalised() -> None:
    assert validate_lead(lead(subject__phone="+86 138-1234-5678")).lead.subject.phone == "13812345678"
    assert validate_lead(lead(subject__phone="0532-88886666")).lead.subject.phone == "053288886666"


@pytest.mark.parametrize("idn, valid, born", [
    (VALID_ID, True, date(1949, 12, 31)),
    ("11010519491231002x", True, date(1949, 12, 31)),
    ("370299197306123723", True, date(1973, 6, 12)),
    ("370299198904085680", False, date(1989, 4, 8)),  # wrong check digit; birth date still readable
    ("110105491231002", True, date(1949, 12, 31)),  # first generation, 15 digits
    ("110105491331002", False, None),  # month 13
    ("370299198902305680", False, None),  # 30 February
    ("370299189904085680", False, None),  # born before 1900
    ("370299212004085688", False, date(2120, 4, 8)),  # born in the future
    ("3702991989040856", False, None),
    ("370299197306123x", False, None),  # the generator's id_too_short
    ("37029919730612372A", False, None),
    ("", False, None),
])
def test_id_numbers(idn: str, valid: bool, born: date | None) -> None:
    assert id_number_valid(idn) is valid
    assert birth_date_from_id(idn) == born


def test_masks() -> None:
    assert mask_phone("13812345678") == "138****5678"
    assert mask_phone("053288886666") == "0532******66"
    assert mask_phone(None) is None and mask_id(None) is None
    assert mask_id("370299198904085680") == "3702**********5680"
    assert mask_id("110105491231002") == "1101*******1002"
    for p in ("13812345678", "053288886666", "01012345678", "96110", "1234567890123"):
        masked = mask_phone(p)
        assert len(masked) == len(p) and sum(c.isdigit() for c in masked) <= 7 and "*" in masked
