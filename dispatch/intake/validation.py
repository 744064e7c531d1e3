"""Validation of pushed leads (contract.md "Leads"): hard defects reject the lead, soft ones
are kept as flags because the person may still be at risk. Pure and on the hot ingest
path, so plain dict/type checks instead of a pydantic round trip."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from dispatch.enums import Flag, FraudType, LocationKind, Residency, Source, WarningType
from dispatch.identity import MOBILE, id_number_valid, normalize_phone
from dispatch.intake.schemas import LeadIn, LocationIn, SubjectIn
from service.core.clock import CENTER_TZ  # a naive pushed time is the center's local time
from service.core.money import MAX_CNY

M = TypeVar("M", bound=BaseModel)

CRS_VALUES = ("wgs84", "gcj02", "bd09")  # geo owns the CRS enum; here they are plain strings

# What the columns hold (dispatch/models.py Lead), so that nothing validation accepts is refused
# by PostgreSQL. Text columns are unbounded there; these bounds keep rows and screens sane.
MAX_SOURCE_ID = 128
MAX_NAME = 100
MAX_ID_NUMBER = 32
MAX_PHONE = 40  # as pushed, with separators
MAX_AMOUNT = MAX_CNY  # Numeric(14, 2)
MAX_AMOUNT_FLOAT = float(MAX_AMOUNT)
MAX_ACCURACY_M = 1_000_000.0
# pushed_at: PostgreSQL holds 4713 BC..294276 AD, Python 1..9999 (a +05:00 time in year 1 is in
# year 0 in UTC and cannot be converted). A warning pushed outside these years is a bad time.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)
# Free JSON (counterpart): JSONB takes any depth and size, the screens and the row do not.
MAX_JSON_DEPTH = 8
MAX_JSON_KEYS = 200  # keys and list items, all levels together
MAX_JSON_BYTES = 16 * 1024
_JSON_NUMBER = 2**63
MAX_ADDRESS = 500  # a street address, as 96110 / 110 operators type it


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # dotted path into the pushed JSON; "" for the whole body
    message: str


@dataclass(frozen=True, slots=True)
class Checked:
    lead: LeadIn | None
    errors: list[FieldError]
    flags: list[str]


# ---------------------------------------------------------------- the lead
def _members(enum: type[StrEnum]) -> dict[str, StrEnum]:
    return {m.value: m for m in enum}


_SOURCES = _members(Source)
_WARNING_TYPES = _members(WarningType)
_FRAUD_TYPES = _members(FraudType)
_RESIDENCIES = _members(Residency)
_KINDS = _members(LocationKind)
# Enum attribute access is slow on 3.11; the hot path uses these instead.
_OTHER = FraudType.other
_RESIDENCY_UNKNOWN = Residency.unknown
_ID_INVALID, _FRAUD_UNKNOWN, _RESIDENCY_FLAG, _KIND_FLAG, _NO_LOCATION = (
    Flag.id_number_invalid, Flag.fraud_type_unknown, Flag.residency_unknown, Flag.location_kind_unknown,
    Flag.no_location)
_ONE_OF = {e: "must be one of: " + ", ".join(e.__members__) for e in (Source, WarningType)}
_CRS_MESSAGE = "must be one of: " + ", ".join(CRS_VALUES)
_NO_CONTACT = "neither phone nor location: no way to reach the person"


def _show(v: object) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _number(v: object) -> float | None:
    """A finite JSON number (bool is not a number), else None."""
    t = type(v)
    if t is float:
        return v if math.isfinite(v) else None  # type: ignore[arg-type]
    if t is int:
        return float(v) if -1e300 < v < 1e300 else None  # type: ignore[operator,arg-type]
    return None


def _optional_str(v: object, field: str, errors: list[FieldError], max_length: int) -> str | None:
    if v is None:
        return None
    if type(v) is not str:
        errors.append(FieldError(field, "must be a string or null"))
        return None
    v = v.strip()
    if len(v) > max_length:
        errors.append(FieldError(field, f"longer than {max_length} characters"))
        return None
    return v or None


def _risk_level(v: object) -> int | None:
    t = type(v)
    if t is int:
        r = v
    elif t is float and v.is_integer():  # type: ignore[union-attr]
        r = int(v)  # type: ignore[arg-type]
    elif t is str and len(v) < 8 and v.strip().isascii() and v.strip().isdigit():  # type: ignore[union-attr,arg-type]
        r = int(v)  # type: ignore[arg-type]
    else:
        return None
    return r if 1 <= r <= 3 else None  # type: ignore[operator,return-value]


def _unstorable_strings(obj: object, errors: list[FieldError]) -> None:
    """PostgreSQL stores no NUL character in text or JSONB, and no string that is not UTF-8 (a
    lone surrogate): name each field that holds one. Iterative, so any depth is safe; the slow
    path, taken only when the whole body failed the quick check in `_storable`."""
    stack: list[tuple[str, object]] = [("", obj)]
    while stack:
        path, v = stack.pop()
        t = type(v)
        if t is str:
            if "\x00" in v:  # type: ignore[operator]
                errors.append(FieldError(path, "must not contain a NUL character"))
            elif not _utf8(v):  # type: ignore[arg-type]
                errors.append(FieldError(path, "must be valid Unicode (no lone surrogates)"))
        elif t is dict:
            for k, x in v.items():  # type: ignore[union-attr]
                here = f"{path}.{k}" if path else str(k)
                if type(k) is str and ("\x00" in k or not _utf8(k)):
                    errors.append(FieldError(here, "key must be valid Unicode without NUL characters"))
                stack.append((here, x))
        elif t is list:
            stack.extend((f"{path}.{i}", x) for i, x in enumerate(v))  # type: ignore[arg-type]


def _utf8(s: str) -> bool:
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def _storable(obj: dict, errors: list[FieldError]) -> None:
    """One orjson pass over the whole body (µs) proves it has no lone surrogate, no integer past
    64 bits and no NUL; only a body that fails it is walked to name the fields."""
    try:
        text = orjson.dumps(obj)
    except (TypeError, orjson.JSONEncodeError):
        text = None
    if text is None or b"\\u0000" in text:
        n = len(errors)
        _unstorable_strings(obj, errors)
        if len(errors) == n:  # not a string: a number or a key type orjson cannot write
            errors.append(FieldError("", "holds a value that cannot be stored (integer over 64 bits?)"))


def storable_body(body: bytes) -> bool:
    """Whether a body `orjson.loads` accepted holds only strings PostgreSQL can store, for all its
    leads at once: orjson refuses lone surrogates and raw control characters, writes integers past
    64 bits as floats, and JSON can spell NUL only as the escape `\\u0000`. (A text holding a
    backslash before `u0000` reads as NUL here too: the body then takes the per-lead pass.)"""
    return b"\\u0000" not in body


def _json_shape(v: object, field: str, errors: list[FieldError]) -> None:
    """Free JSON (counterpart) within MAX_JSON_DEPTH levels, MAX_JSON_KEYS members, MAX_JSON_BYTES."""
    members = 0
    level: list[object] = [v]
    depth = 0
    while level:
        depth += 1
        if depth > MAX_JSON_DEPTH:
            errors.append(FieldError(field, f"nested deeper than {MAX_JSON_DEPTH} levels"))
            return
        nxt: list[object] = []
        for x in level:
            t = type(x)
            if t is dict:
                members += len(x)  # type: ignore[arg-type]
                nxt.extend(x.values())  # type: ignore[union-attr]
            elif t is list:
                members += len(x)  # type: ignore[arg-type]
                nxt.extend(x)  # type: ignore[arg-type]
            elif (t is int or t is float) and not -_JSON_NUMBER < x < _JSON_NUMBER:  # type: ignore[operator]
                # JSONB keeps numbers exact and writes 1e20 back as 100000000000000000000: past
                # 64 bits it could not be answered again (nor read by most clients).
                errors.append(FieldError(field, "numbers must lie between -2^63 and 2^63"))
                return
        if members > MAX_JSON_KEYS:
            errors.append(FieldError(field, f"more than {MAX_JSON_KEYS} keys and items"))
            return
        level = nxt
    try:
        size = len(orjson.dumps(v))
    except (TypeError, orjson.JSONEncodeError):
        return  # named by _storable
    if size > MAX_JSON_BYTES:
        errors.append(FieldError(field, f"larger than {MAX_JSON_BYTES} bytes as JSON"))


def _pushed_at(raw_time: object, errors: list[FieldError]) -> datetime | None:
    if type(raw_time) is not str:
        errors.append(FieldError("pushed_at", "required" if raw_time is None else "must be an ISO 8601 string"))
        return None
    try:
        pushed_at = datetime.fromisoformat(raw_time)  # type: ignore[arg-type]
    except ValueError:
        errors.append(FieldError("pushed_at", f"{_show(raw_time)} is not an ISO 8601 time"))
        return None
    if pushed_at.tzinfo is None:
        pushed_at = pushed_at.replace(tzinfo=CENTER_TZ)
    try:
        in_range = EARLIEST <= pushed_at < LATEST
    except (OverflowError, ValueError):  # the offset takes it past year 1 or 9999
        in_range = False
    if not in_range:
        errors.append(FieldError("pushed_at", f"{_show(raw_time)} is outside {EARLIEST.year}..{LATEST.year - 1}"))
        return None
    return pushed_at


def validate_lead(obj: object, storable: bool = False) -> Checked:
    """Check one pushed lead. All hard errors are collected (lead None); soft defects
    become flags on an accepted, normalised `LeadIn` whose every value fits its column. Never
    raises, for any JSON value (tests/dispatch/test_validation_property.py). `storable`: the
    caller has proved every string in `obj` storable (`storable_body`), so the per-lead pass of
    `_storable` is skipped."""
    if type(obj) is not dict:
        return Checked(None, [FieldError("", "body must be a JSON object")], [])
    errors: list[FieldError] = []
    flags: list[str] = []
    get = obj.get

    source = get("source")
    if type(source) is not str or source not in _SOURCES:
        errors.append(FieldError("source", "required" if source is None else f"{_show(source)} {_ONE_OF[Source]}"))

    source_id = get("source_id")
    if type(source_id) is not str or not source_id.strip() or len(source_id) > MAX_SOURCE_ID:
        errors.append(FieldError("source_id", "required" if source_id is None else
                                 "must be a string" if type(source_id) is not str else
                                 "must not be empty" if not source_id.strip() else
                                 f"longer than {MAX_SOURCE_ID} characters"))

    pushed_at = _pushed_at(get("pushed_at"), errors)

    warning_type = get("warning_type")
    if type(warning_type) is not str or warning_type not in _WARNING_TYPES:
        errors.append(FieldError("warning_type", "required" if warning_type is None else
                                 f"{_show(warning_type)} {_ONE_OF[WarningType]}"))

    raw_fraud = get("fraud_type")
    fraud_type = _FRAUD_TYPES.get(raw_fraud) if type(raw_fraud) is str else None
    fraud_type_raw: str | None = None
    if fraud_type is None:
        fraud_type = _OTHER
        if type(raw_fraud) is str:
            fraud_type_raw = raw_fraud[:MAX_SOURCE_ID]
            flags.append(_FRAUD_UNKNOWN)
        elif raw_fraud is None:
            flags.append(_FRAUD_UNKNOWN)
        else:
            errors.append(FieldError("fraud_type", "must be a string"))

    raw_risk = get("risk_level")
    risk_level = raw_risk if type(raw_risk) is int and 1 <= raw_risk <= 3 else _risk_level(raw_risk)
    if risk_level is None:
        errors.append(FieldError("risk_level", "required" if raw_risk is None else
                                 f"{_show(raw_risk)} is not an integer 1 (high) to 3 (low)"))

    amount = get("amount_cny")
    if amount is not None:
        amount = _number(amount)
        if amount is None:
            errors.append(FieldError("amount_cny", "must be a number or null"))
        elif amount < 0:
            errors.append(FieldError("amount_cny", "must not be negative"))
        elif round(amount, 2) > MAX_AMOUNT_FLOAT:
            errors.append(FieldError("amount_cny", f"must be below {MAX_AMOUNT} (Numeric(14, 2))"))

    counterpart = get("counterpart")
    if counterpart is None:
        counterpart = {}
    elif type(counterpart) is not dict:
        errors.append(FieldError("counterpart", "must be an object"))
    elif counterpart:
        _json_shape(counterpart, "counterpart", errors)

    ongoing = get("ongoing", False)
    if type(ongoing) is not bool:
        if ongoing is None:
            ongoing = False
        else:
            errors.append(FieldError("ongoing", "must be true or false"))

    # -- subject: anything but an object is treated as {} and the contact rule decides
    subject = get("subject")
    if type(subject) is not dict:
        subject = {}
    phone: str | None = None
    raw_phone = subject.get("phone")
    phone_error = False
    if raw_phone is not None:
        if type(raw_phone) is not str:
            errors.append(FieldError("subject.phone", "must be a string or null"))
            phone_error = True
        elif len(raw_phone) > MAX_PHONE:
            errors.append(FieldError("subject.phone", f"longer than {MAX_PHONE} characters"))
            phone_error = True
        else:
            phone = MOBILE.fullmatch(raw_phone) and raw_phone or normalize_phone(raw_phone)
            if phone is None and raw_phone.strip():
                errors.append(FieldError("subject.phone", "not a valid mainland mobile or landline number"))
                phone_error = True
    name = _optional_str(subject.get("name"), "subject.name", errors, MAX_NAME)
    id_number = _optional_str(subject.get("id_number"), "subject.id_number", errors, MAX_ID_NUMBER)
    if id_number is not None and not id_number_valid(id_number):
        flags.append(_ID_INVALID)
    raw_res = subject.get("residency")
    residency = _RESIDENCIES.get(raw_res) if type(raw_res) is str else None
    if residency is None:
        residency = _RESIDENCY_UNKNOWN
        if type(raw_res) is str:
            flags.append(_RESIDENCY_FLAG)
        elif raw_res is not None:
            errors.append(FieldError("subject.residency", "must be a string or null"))

    # -- location
    raw_loc = get("location")
    location: LocationIn | None = None
    if raw_loc is None:
        flags.append(_NO_LOCATION)
        if phone is None and not phone_error:
            errors.append(FieldError("subject.phone", _NO_CONTACT))
    elif type(raw_loc) is not dict:
        errors.append(FieldError("location", "must be an object or null"))
    else:
        location = _location(raw_loc, errors, flags)

    if not storable:
        _storable(obj, errors)
    if errors:
        return Checked(None, errors, flags)
    lead = _build(LeadIn, {
        "source": _SOURCES[source], "source_id": source_id, "pushed_at": pushed_at,
        "warning_type": _WARNING_TYPES[warning_type], "fraud_type": fraud_type, "fraud_type_raw": fraud_type_raw,
        "risk_level": risk_level,
        "subject": _build(SubjectIn, {"phone": phone, "name": name, "id_number": id_number,
                                      "residency": residency}),
        "counterpart": counterpart, "amount_cny": amount, "location": location, "ongoing": ongoing})
    return Checked(lead, errors, flags)


def _coordinate(loc: dict, key: str, limit: float, errors: list[FieldError]) -> float:
    raw = loc.get(key)
    v = _number(raw)
    if v is None:
        errors.append(FieldError(f"location.{key}", "required" if raw is None else "must be a number"))
    elif not -limit <= v <= limit:
        errors.append(FieldError(f"location.{key}", f"{v} is out of range -{limit:g}..{limit:g}"))
    return v  # type: ignore[return-value]


def _location(loc: dict, errors: list[FieldError], flags: list[str]) -> LocationIn | None:
    n = len(errors)
    address = _optional_str(loc.get("address"), "location.address", errors, MAX_ADDRESS)
    # kind "address" with an address and no coordinates: the worker geocodes it.
    address_only = loc.get("kind") == "address" and loc.get("lon") is None and loc.get("lat") is None
    if address_only:
        if address is None and len(errors) == n:
            errors.append(FieldError("location.address", "required when kind is address and lon/lat are absent"))
        lon = lat = crs = None
    else:
        lon = _coordinate(loc, "lon", 180.0, errors)
        lat = _coordinate(loc, "lat", 90.0, errors)
        crs = loc.get("crs")
        if crs not in CRS_VALUES:
            norm = crs.strip().lower() if type(crs) is str else None
            if norm in CRS_VALUES:
                crs = norm  # "WGS84 " and friends: harmless spelling, not a defect
            else:
                errors.append(FieldError("location.crs", "required: " + _CRS_MESSAGE[8:] if crs is None else
                                         f"{_show(crs)} {_CRS_MESSAGE}"))
    accuracy = loc.get("accuracy_m")
    if accuracy is not None:
        accuracy = _number(accuracy)
        if accuracy is None or not 0 <= accuracy <= MAX_ACCURACY_M:
            errors.append(FieldError("location.accuracy_m", f"must be a number 0..{MAX_ACCURACY_M:g} or null"))
    raw_kind = loc.get("kind")
    kind = None
    if raw_kind is not None:
        if type(raw_kind) is not str:
            errors.append(FieldError("location.kind", "must be a string or null"))
        else:
            kind = _KINDS.get(raw_kind)
            if kind is None:
                flags.append(_KIND_FLAG)
    if len(errors) > n:
        return None
    return _build(LocationIn, {"lon": lon, "lat": lat, "crs": crs, "accuracy_m": accuracy, "kind": kind,
                               "address": address})


_set_attr = object.__setattr__


def _build(cls: type[M], values: dict[str, Any]) -> M:
    """`cls.model_construct(**values)` for an already-normalised, complete field set, minus
    its per-field default handling (3× faster; it is most of the cost of a valid lead).
    Pydantic v2 models keep exactly these four slots; test_validation checks the result
    equals a validated model."""
    m = cls.__new__(cls)
    _set_attr(m, "__dict__", values)
    _set_attr(m, "__pydantic_fields_set__", set(values))
    _set_attr(m, "__pydantic_extra__", None)
    _set_attr(m, "__pydantic_private__", None)
    return m
