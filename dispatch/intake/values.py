"""Plain checks of pushed JSON values, shared by a lead's own fields and its location: type tests
on the hot ingest path instead of a pydantic round trip, and the model built without one."""
from __future__ import annotations

import math
from typing import Any, TypeVar

from pydantic import BaseModel

from service.core.errors import FieldError

M = TypeVar("M", bound=BaseModel)


def show(v: object) -> str:
    """A pushed value as an error message quotes it: its repr, cut at 40 characters."""
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def number(v: object) -> float | None:
    """A finite JSON number (bool is not a number), else None."""
    t = type(v)
    if t is float:
        return v if math.isfinite(v) else None  # type: ignore[arg-type]
    if t is int:
        return float(v) if -1e300 < v < 1e300 else None  # type: ignore[operator,arg-type]
    return None


def optional_str(v: object, field: str, errors: list[FieldError], max_length: int) -> str | None:
    """A string or null, stripped; blank is None."""
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


_set_attr = object.__setattr__


def build(cls: type[M], values: dict[str, Any]) -> M:
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
