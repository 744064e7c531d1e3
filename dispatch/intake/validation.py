"""Validation of pushed leads (contract.md "Leads"): hard defects reject the lead, soft ones
are kept as flags because the person may still be at risk. Pure and on the hot ingest
path, so plain dict/type checks instead of a pydantic round trip."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum

from dispatch.enums import Flag, FraudType, Residency, Source, WarningType
from dispatch.identity import MOBILE, id_number_valid, normalize_phone
from dispatch.intake.location import validate_location
from dispatch.intake.schemas import LeadIn, LocationIn, SubjectIn
from dispatch.intake.storable import check_free_json, check_storable
from dispatch.intake.values import build, number, optional_str, show
from service.core.clock import CENTER_TZ  # a naive pushed time is the center's local time
from service.core.errors import FieldError
from service.core.money import MAX_CNY

# What the columns hold (dispatch/models.py Lead), so that nothing validation accepts is refused
# by PostgreSQL. Text columns are unbounded there; these bounds keep rows and screens sane.
MAX_SOURCE_ID = 128
MAX_NAME = 100
MAX_ID_NUMBER = 32
MAX_PHONE = 40  # as pushed, with separators
MAX_AMOUNT = MAX_CNY  # Numeric(14, 2)
MAX_AMOUNT_FLOAT = float(MAX_AMOUNT)
# pushed_at: PostgreSQL holds 4713 BC..294276 AD, Python 1..9999 (a +05:00 time in year 1 is in
# year 0 in UTC and cannot be converted). A warning pushed outside these years is a bad time.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2200, 1, 1, tzinfo=timezone.utc)


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
# Enum attribute access is slow on 3.11; the hot path uses these instead.
_OTHER = FraudType.other
_RESIDENCY_UNKNOWN = Residency.unknown
_ID_INVALID, _FRAUD_UNKNOWN, _RESIDENCY_FLAG, _NO_LOCATION = (
    Flag.id_number_invalid, Flag.fraud_type_unknown, Flag.residency_unknown, Flag.no_location)
_ONE_OF = {e: "must be one of: " + ", ".join(e.__members__) for e in (Source, WarningType)}
_NO_CONTACT = "neither phone nor location: no way to reach the person"


def _risk_level(v: object) -> int | None:
    t = type(v)
    if t is int:
        r = v
    elif t is float and v.is_integer():  # type: ignore[union-attr]  # 2.0 is the JSON integer 2
        r = int(v)  # type: ignore[arg-type]
    else:  # a string ("2") is not the integer the schema says (issue 24: strict types on input)
        return None
    return r if 1 <= r <= 3 else None  # type: ignore[operator,return-value]


def _pushed_at(raw_time: object, errors: list[FieldError]) -> datetime | None:
    if type(raw_time) is not str:
        errors.append(FieldError("pushed_at", "required" if raw_time is None else "must be an ISO 8601 string"))
        return None
    try:
        pushed_at = datetime.fromisoformat(raw_time)  # type: ignore[arg-type]
    except ValueError:
        errors.append(FieldError("pushed_at", f"{show(raw_time)} is not an ISO 8601 time"))
        return None
    if pushed_at.tzinfo is None:
        pushed_at = pushed_at.replace(tzinfo=CENTER_TZ)
    try:
        in_range = EARLIEST <= pushed_at < LATEST
    except (OverflowError, ValueError):  # the offset takes it past year 1 or 9999
        in_range = False
    if not in_range:
        errors.append(FieldError("pushed_at", f"{show(raw_time)} is outside {EARLIEST.year}..{LATEST.year - 1}"))
        return None
    return pushed_at


def validate_lead(obj: object, storable: bool = False) -> Checked:
    """Check one pushed lead. All hard errors are collected (lead None); soft defects
    become flags on an accepted, normalised `LeadIn` whose every value fits its column. Never
    raises, for any JSON value (tests/dispatch/test_validation_property.py). `storable`: the
    caller has proved every string in `obj` storable (`storable_body`), so the per-lead pass of
    `check_storable` is skipped."""
    if type(obj) is not dict:
        return Checked(None, [FieldError("", "body must be a JSON object")], [])
    errors: list[FieldError] = []
    flags: list[str] = []
    get = obj.get

    source = get("source")
    if type(source) is not str or source not in _SOURCES:
        errors.append(FieldError("source", "required" if source is None else f"{show(source)} {_ONE_OF[Source]}"))

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
                                 f"{show(warning_type)} {_ONE_OF[WarningType]}"))

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
                                 f"{show(raw_risk)} is not an integer 1 (high) to 3 (low)"))

    amount = get("amount_cny")
    if amount is not None:
        amount = number(amount)
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
        check_free_json(counterpart, "counterpart", errors)

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
    name = optional_str(subject.get("name"), "subject.name", errors, MAX_NAME)
    id_number = optional_str(subject.get("id_number"), "subject.id_number", errors, MAX_ID_NUMBER)
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
        location = validate_location(raw_loc, errors, flags)

    if not storable:
        check_storable(obj, errors)
    if errors:
        return Checked(None, errors, flags)
    lead = build(LeadIn, {
        "source": _SOURCES[source], "source_id": source_id, "pushed_at": pushed_at,
        "warning_type": _WARNING_TYPES[warning_type], "fraud_type": fraud_type, "fraud_type_raw": fraud_type_raw,
        "risk_level": risk_level,
        "subject": build(SubjectIn, {"phone": phone, "name": name, "id_number": id_number,
                                     "residency": residency}),
        "counterpart": counterpart, "amount_cny": amount, "location": location, "ongoing": ongoing})
    return Checked(lead, errors, flags)
