"""Query, path and form values that fit what PostgreSQL holds: no NUL character (text columns
refuse it), bounded lengths, times any column can compare with, ids within bigint. Use them in
route signatures so a bad value is a 422 naming the parameter, never a driver error (500)."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import Path
from pydantic import AfterValidator, BeforeValidator, Strict, StringConstraints

from service.core.clock import CENTER_TZ  # a time without offset is the center's local time

NO_NUL = r"^[^\x00]*$"
BIGINT_MAX = 2**63 - 1


def Text(max_length: int = 128, min_length: int = 0):  # noqa: N802 - a type factory, read as a type
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length, pattern=NO_NUL)]


Code = Text(64)  # beat, street, team and source codes
Name = Text(150)  # usernames, free names
Secret = Text(1024)  # passwords, keys


def _storable_time(t: datetime) -> datetime:
    if t.tzinfo is None:
        t = t.replace(tzinfo=CENTER_TZ)
    try:
        t.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ValueError("outside the years 1..9999 once its offset is applied") from None
    return t


Time = Annotated[datetime, AfterValidator(_storable_time)]


def _number_not_text(v):
    if isinstance(v, (str, bytes, bool)):
        raise ValueError("must be a JSON number, not a string or a boolean")
    return v


# JSON bodies are read strictly where the schema says number or boolean: pydantic's lax mode would
# take "12.5", "true" or 1 (times stay ISO 8601 strings, enums their values). Use as
# `Annotated[float | None, Number] = Field(...)` and `Bool`.
Number = BeforeValidator(_number_not_text)
Bool = Annotated[bool, Strict()]
Id = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
