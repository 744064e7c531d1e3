"""The documented error answer and the `responses=` of a route, in one import:

    @router.get(..., response_model=ThingPublic, responses=error_responses(401, 403, 404))

Every error body is {"error", "detail"} (contract.md "Errors"); 503 (storage unavailable, with
Retry-After) is documented on every route because any route can meet it."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class FieldErrorOut(BaseModel):
    field: str = Field(description="Dotted path into the request (\"subject.phone\"); \"\" for the whole body")
    message: str


class ErrorOut(BaseModel):
    """Every error: a code and a detail (a message, or a list of field errors for 400/422)."""
    error: str = Field(examples=["validation_error"])
    detail: str | list[FieldErrorOut] | dict[str, Any] | None = None


_EXAMPLES: dict[int, tuple[str, dict]] = {
    400: ("Malformed request (bad JSON, a cursor this API did not give out)",
          {"error": "bad_request", "detail": [{"field": "cursor", "message": "not a cursor this API gave out"}]}),
    401: ("No or bad credentials", {"error": "unauthorized", "detail": "credentials required"}),
    403: ("This caller's role may not do this", {"error": "forbidden", "detail": "role 'police' may not do this"}),
    404: ("No such thing (or not visible to this caller)", {"error": "not_found", "detail": "lead 7 not found"}),
    409: ("Not allowed in the current state", {"error": "conflict", "detail": "lead 7 is closed"}),
    429: ("Too many attempts; retry after Retry-After",
          {"error": "too_many_requests", "detail": "too many wrong passwords; try again later"}),
    413: ("Body over the limit", {"error": "payload_too_large", "detail": "request body over the limit"}),
    422: ("Invalid input; detail names each field",
          {"error": "validation_error", "detail": [{"field": "subject.phone", "message": "not a valid number"}]}),
    503: ("PostgreSQL or Redis unavailable, a lock wait timed out or intake is full; retry after Retry-After",
          {"error": "unavailable", "detail": "storage is unavailable; retry shortly"}),
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for FastAPI: each code with ErrorOut and an example; 400, 413, 422 and 503
    always (any route may meet a bad request, a too-large body, bad parameters or a storage outage)."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in sorted({*codes, 400, 413, 422, 503}):
        description, example = _EXAMPLES[code]
        entry: dict[str, Any] = {"model": ErrorOut, "description": description,
                                 "content": {"application/json": {"example": example}}}
        if code in (429, 503):
            entry["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
        out[code] = entry
    return out
