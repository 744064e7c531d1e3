"""A few measured hot routes served before FastAPI's routing (pure ASGI).

Under the single-push load (bench/ingest.py) FastAPI's route matching over every route of the
service, its dependency solving and the exception and exit-stack middleware cost more server CPU
than validating and storing the lead. A route listed here is answered by a plain handler that takes
the `Request` and returns a `Response`; its errors go through the app's own exception handlers, so
answers are the same as the routed ones (a bug still propagates to Starlette's 500). The route stays
declared on its router too, for /openapi.json, and both paths run the same endpoint function."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Awaitable[Response]]


def _handler_for(handlers: dict, exc: Exception):
    """The app's handler for `exc`, found as Starlette's ExceptionMiddleware finds it (by class, most
    specific first); the catch-all (Exception / 500) is left to the server-error middleware."""
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


class FastRoutes:
    """`app.add_middleware(FastRoutes, routes={("POST", "/api/v1/leads"): handler})`: add it before
    (inside) the body limit, which still applies."""

    def __init__(self, app, routes: dict[tuple[str, str], Handler]):
        self.app, self.routes = app, routes

    async def __call__(self, scope, receive, send):
        handler = (self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http"
                   and not scope.get("root_path") else None)
        if handler is None:
            return await self.app(scope, receive, send)
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            on_error = _handler_for(scope["app"].exception_handlers, exc)
            if on_error is None:
                raise
            response = await on_error(request, exc)
        await response(scope, receive, send)
