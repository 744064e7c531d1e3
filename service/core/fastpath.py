"""A few measured hot routes served before FastAPI's routing (pure ASGI), and the sockets before everything.

Under the single-push load (bench/ingest.py) FastAPI's route matching over every route of the
service, its dependency solving and the exception and exit-stack middleware cost more server CPU
than validating and storing the lead. A route listed here is answered by a plain handler that takes
the `Request` and returns a `Response`; its errors go through the app's own exception handlers, so
answers are the same as the routed ones (a bug still propagates to Starlette's 500). The route stays
declared on its router too, for /openapi.json, and both paths run the same endpoint function."""
from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket

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


class App(FastAPI):
    """FastAPI, with the sockets of `sockets` ({path: handler(WebSocket)}) taken before any middleware.

    A socket lives for hours, and every ASGI layer it passes keeps a suspended frame (and FastAPI's
    exit stacks) alive all that time: about 9 KiB per idle socket of the 40 it cost (tracemalloc,
    bench/sockets.py). None of those layers does anything for these two: the body limit and the
    server-error middleware pass sockets through, the handlers take no dependencies and catch their
    own errors. The routes stay declared on their router too; TestClient and uvicorn both come here."""

    sockets: dict[str, Callable[[WebSocket], Awaitable[None]]]

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not scope.get("root_path"):
            handler = self.sockets.get(scope["path"])
            if handler is not None:
                scope["app"] = self
                return await handler(WebSocket(scope, receive, send))
        await super().__call__(scope, receive, send)
