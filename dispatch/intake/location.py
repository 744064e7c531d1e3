"""Validation of a pushed lead's location (contract.md "Leads"): coordinates in one of the three
coordinate systems, or an address alone for the worker to geocode. An unknown kind is a soft defect
(a flag); anything else wrong rejects the lead."""
from __future__ import annotations

from dispatch.enums import Flag, LocationKind
from dispatch.intake.schemas import LocationIn
from dispatch.intake.values import build, number, optional_str, show
from service.core.errors import FieldError

CRS_VALUES = ("wgs84", "gcj02", "bd09")  # geo owns the CRS enum; here they are plain strings
MAX_ACCURACY_M = 1_000_000.0
MAX_ADDRESS = 500  # a street address, as 96110 / 110 operators type it

_KINDS = {m.value: m for m in LocationKind}
_KIND_FLAG = Flag.location_kind_unknown  # enum attribute access is slow on 3.11
_CRS_MESSAGE = "must be one of: " + ", ".join(CRS_VALUES)


def _coordinate(loc: dict, key: str, limit: float, errors: list[FieldError]) -> float:
    raw = loc.get(key)
    v = number(raw)
    if v is None:
        errors.append(FieldError(f"location.{key}", "required" if raw is None else "must be a number"))
    elif not -limit <= v <= limit:
        errors.append(FieldError(f"location.{key}", f"{v} is out of range -{limit:g}..{limit:g}"))
    return v  # type: ignore[return-value]


def validate_location(loc: dict, errors: list[FieldError], flags: list[str]) -> LocationIn | None:
    """The normalised location, or None when it added errors."""
    n = len(errors)
    address = optional_str(loc.get("address"), "location.address", errors, MAX_ADDRESS)
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
                                         f"{show(crs)} {_CRS_MESSAGE}"))
    accuracy = loc.get("accuracy_m")
    if accuracy is not None:
        accuracy = number(accuracy)
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
    return build(LocationIn, {"lon": lon, "lat": lat, "crs": crs, "accuracy_m": accuracy, "kind": kind,
                              "address": address})
