"""What PostgreSQL can store of a pushed body: text and JSONB hold no NUL character and no string
that is not UTF-8, and free JSON (a lead's counterpart) stays within bounds the screens and the
row can carry. Each check names the field that breaks it."""
from __future__ import annotations

import orjson

from service.core.errors import FieldError

# Free JSON (counterpart): JSONB takes any depth and size, the screens and the row do not.
MAX_JSON_DEPTH = 8
MAX_JSON_KEYS = 200  # keys and list items, all levels together
MAX_JSON_BYTES = 16 * 1024
_JSON_NUMBER = 2**63


def storable_body(body: bytes) -> bool:
    """Whether a body `orjson.loads` accepted holds only strings PostgreSQL can store, for all its
    leads at once: orjson refuses lone surrogates and raw control characters, writes integers past
    64 bits as floats, and JSON can spell NUL only as the escape `\\u0000`. (A text holding a
    backslash before `u0000` reads as NUL here too: the body then takes the per-lead pass.)"""
    return b"\\u0000" not in body


def check_storable(obj: dict, errors: list[FieldError]) -> None:
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


def _unstorable_strings(obj: object, errors: list[FieldError]) -> None:
    """PostgreSQL stores no NUL character in text or JSONB, and no string that is not UTF-8 (a
    lone surrogate): name each field that holds one. Iterative, so any depth is safe; the slow
    path, taken only when the whole body failed the quick check in `check_storable`."""
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


def check_free_json(v: object, field: str, errors: list[FieldError]) -> None:
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
        return  # named by check_storable
    if size > MAX_JSON_BYTES:
        errors.append(FieldError(field, f"larger than {MAX_JSON_BYTES} bytes as JSON"))
