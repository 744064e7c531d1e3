"""Typed errors raised by services; one set of handlers turns them into {"error", "detail"}."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import redis
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.core.logging import log
from service.core.metrics import DEPENDENCY_ERRORS
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


class TooManyRequests(AppError):
    """429 + Retry-After: this caller must wait (sign-in limits)."""
    status, code = 429, "too_many_requests"

    def __init__(self, detail: Any, retry_after: int):
        super().__init__(detail, headers={"Retry-After": str(max(1, retry_after))})


class ValidationFailed(AppError):
    """422 with detail = [{"field": "subject.phone", "message": "..."}]."""
    status, code = 422, "validation_error"


@dataclass(frozen=True, slots=True)
class FieldError:
    """One defect of what a client sent: the dotted path into its JSON ("" for the whole body)."""
    field: str
    message: str


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


class Unavailable(AppError):
    """503 + Retry-After: we cannot take this now (storage away, a lock wait timed out, intake full)."""
    status, code = 503, "unavailable"

    def __init__(self, detail: Any = "storage is unavailable; retry shortly", retry_after: int = 5):
        super().__init__(detail, headers={"Retry-After": str(retry_after)})


# The connection to PostgreSQL is gone or unusable: the server died or restarts under it. asyncpg's
# InternalClientError ("another operation is in progress") is a connection whose server died in the
# middle of a statement, before the socket was seen closed (found by bench/kills.py).
CONNECTION_LOST = (OSError, asyncpg.exceptions.ConnectionDoesNotExistError, asyncpg.exceptions.CannotConnectNowError,
                   asyncpg.exceptions.AdminShutdownError, asyncpg.exceptions.CrashShutdownError,
                   asyncpg.exceptions.PostgresConnectionError, asyncpg.exceptions.InterfaceError,
                   asyncpg.exceptions.InternalClientError)
# A server we depend on is down or restarting, or made us wait too long (statement_timeout,
# lock_timeout): the client did nothing wrong and may retry. OSError includes TimeoutError.
UNAVAILABLE = (*CONNECTION_LOST, asyncpg.exceptions.TooManyConnectionsError, asyncpg.exceptions.LockNotAvailableError,
               asyncpg.exceptions.QueryCanceledError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# A value PostgreSQL refuses (out of range, bad encoding, ...): the client's fault, 422.
REFUSED = (asyncpg.exceptions.DataError,)


def causes(exc: BaseException):
    """The exception and what it wraps: SQLAlchemy's `.orig`, then `__cause__` / `__context__`
    (as polar's operational_errors.py classifies errors by cause, however the driver wraps them)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend((getattr(e, "orig", None), e.__cause__, e.__context__))


def is_unavailable(exc: BaseException) -> bool:
    return any(isinstance(e, UNAVAILABLE) for e in causes(exc))


def connection_lost(exc: BaseException) -> bool:
    return any(isinstance(e, CONNECTION_LOST) for e in causes(exc))


def dependency_of(exc: BaseException) -> str | None:
    """Which server an error came from: "redis", "database", or None (neither: a bug or the client)."""
    found = list(causes(exc))
    if any(isinstance(e, redis.exceptions.RedisError) for e in found):
        return "redis"
    if any(isinstance(e, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, asyncpg.PostgresError,
                          *CONNECTION_LOST)) for e in found):
        return "database"
    return None


def count_dependency_error(exc: BaseException, process: str) -> str | None:
    """Count an error on the dependency it came from (quanzu_dependency_errors_total) → that dependency."""
    dependency = dependency_of(exc)
    if dependency is not None:
        DEPENDENCY_ERRORS.labels(dependency, process).inc()
    return dependency


def refused_value(exc: BaseException) -> BaseException | None:
    return next((e for e in causes(exc) if isinstance(e, REFUSED)), None)


def install_error_handlers(app: FastAPI) -> None:
    async def _unavailable(_request: Request, exc: Exception):
        log.warning("dependency_unavailable", error=exc.__class__.__name__)
        count_dependency_error(exc, "api")
        return JSON({"error": "unavailable", "detail": "storage is unavailable; retry shortly"}, status_code=503,
                    headers={"Retry-After": "5"})

    for kind in UNAVAILABLE:
        app.add_exception_handler(kind, _unavailable)

    @app.exception_handler(sqlalchemy.exc.SQLAlchemyError)
    async def _wrapped(request: Request, exc: sqlalchemy.exc.SQLAlchemyError):
        # Under a SQLModel route the driver's error arrives wrapped: classify it by its cause.
        if is_unavailable(exc):
            return await _unavailable(request, exc)
        refused = refused_value(exc)
        if refused is not None:
            log.warning("value_refused", error=refused.__class__.__name__)
            return JSON({"error": "validation_error",
                         "detail": [{"field": "", "message": f"a value cannot be stored: {refused}"[:300]}]},
                        status_code=422)
        raise exc  # a bug: a 500 with its traceback, not hidden

    @app.exception_handler(AppError)
    async def _app_error(_request: Request, exc: AppError):
        if isinstance(exc, Unavailable):  # raised from a server's error: counted on that server
            count_dependency_error(exc, "api")
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
