"""Typed errors raised by services; one set of handlers turns them into {"error", "detail"}."""
from __future__ import annotations

from typing import Any

import asyncpg
import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.core.logging import log
from service.core.responses import JSON


class AppError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, detail: Any = None, *, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class BadRequest(AppError):
    status, code = 400, "bad_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"

    def __init__(self, detail: Any = "credentials required"):
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class ValidationFailed(AppError):
    """422 with detail = [{"field": "subject.phone", "message": "..."}]."""
    status, code = 422, "validation_error"


def field_errors(errors) -> list[dict[str, str]]:
    return [{"field": e.field, "message": e.message} for e in errors]


_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
                 415: "unsupported_media_type", 429: "too_many_requests"}


def _loc_to_field(loc: tuple) -> str:
    parts = [str(p) for p in loc]
    if len(parts) > 1 and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:]
    return ".".join(parts)


# A server we depend on is down or restarting: the client did nothing wrong and may retry.
UNAVAILABLE = (OSError, asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.CannotConnectNowError,
               asyncpg.exceptions.TooManyConnectionsError, asyncpg.exceptions.AdminShutdownError,
               redis.exceptions.ConnectionError)


def install_error_handlers(app: FastAPI) -> None:
    async def _unavailable(_request: Request, exc: Exception):
        log.warning("dependency_unavailable", error=exc.__class__.__name__)
        return JSON({"error": "unavailable", "detail": "storage is unavailable; retry shortly"}, status_code=503,
                    headers={"Retry-After": "5"})

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError):
        return JSON({"error": exc.code, "detail": exc.detail}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        detail = [{"field": _loc_to_field(tuple(e.get("loc", ()))), "message": e.get("msg", "invalid")}
                  for e in exc.errors()]
        return JSON({"error": "validation_error", "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException):
        return JSON({"error": _STATUS_CODES.get(exc.status_code, "error"), "detail": exc.detail},
                              status_code=exc.status_code, headers=getattr(exc, "headers", None))
