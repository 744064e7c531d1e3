"""Routes served before FastAPI's routing (service.core.fastpath) answer as the routed ones do: the
app's own error handlers, a bug still a 500, the body limit still in front, and the route still in
/openapi.json. Sockets listed on the app are taken before any middleware (an idle socket keeps no
middleware's frame alive), and only those."""
from __future__ import annotations

import json

import httpx
from fastapi import FastAPI, Request, WebSocket

from service.core.errors import Forbidden, ValidationFailed, install_error_handlers
from service.core.fastpath import App, FastRoutes
from service.core.limits import BodyLimit
from service.core.responses import JSON
from tests.factories import make_lead


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    async def direct(request: Request) -> JSON:
        body = await request.body()
        if body == b"bad":
            raise ValidationFailed([{"field": "subject.phone", "message": "required"}])
        if body == b"no":
            raise Forbidden("not you")
        if body == b"bug":
            raise RuntimeError("a bug")
        return JSON({"fast": True, "got": len(body)}, status_code=202)

    @app.post("/things")
    async def routed():
        return {"fast": False}

    @app.get("/things")
    async def listed():
        return {"listed": True}

    app.add_middleware(FastRoutes, routes={("POST", "/things"): direct})
    app.add_middleware(BodyLimit, max_bytes=100)
    return app


async def test_a_fast_route_answers_through_the_app_s_handlers():
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.post("/things", content=b"hello")
        assert (r.status_code, r.json()) == (202, {"fast": True, "got": 5})
        r = await c.post("/things", content=b"bad")
        assert r.status_code == 422
        assert r.json() == {"error": "validation_error", "detail": [{"field": "subject.phone", "message": "required"}]}
        r = await c.post("/things", content=b"no")
        assert (r.status_code, r.json()) == (403, {"error": "forbidden", "detail": "not you"})
        assert (await c.post("/things", content=b"bug")).status_code == 500  # not hidden as a 4xx
        assert (await c.post("/things", content=b"x" * 101)).status_code == 413  # the body limit is in front
        assert (await c.get("/things")).json() == {"listed": True}  # another method: routed as before
        assert (await c.post("/things/")).status_code != 202  # only the exact path


async def test_push_lead_served_fast_is_documented_and_checks_the_caller(client, source_headers, clean, district,
                                                                          make_user):
    schema = (await client.get("/openapi.json")).json()
    post = schema["paths"]["/api/v1/leads"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/LeadIn"}
    assert {"202", "200", "401", "403", "422"} <= set(post["responses"])

    r = await client.post("/api/v1/leads", json=make_lead())
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"error": "unauthorized", "detail": "credentials required"}
    r = await client.post("/api/v1/leads", json=make_lead(), headers={"X-API-Key": "qz_nope"})
    assert r.status_code == 401 and r.json()["detail"] == "unknown or revoked API key"
    r = await client.post("/api/v1/leads", json=make_lead(), headers=make_user("police"))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = await client.post("/api/v1/leads", json=make_lead(subject={"phone": None}, location=None),
                          headers=source_headers)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "subject.phone"
    lead = make_lead()
    first = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    again = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    assert first.status_code == 202 and first.json()["status"] == "received"
    assert again.status_code == 200 and again.json() == {"id": first.json()["id"], "duplicate": True}


def _socket_app() -> tuple[App, list[str]]:
    app, passed = App(), []

    class Watch:  # any middleware: what passes through it
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] != "lifespan":
                passed.append(scope["path"])
            await self.inner(scope, receive, send)

    async def answer(ws: WebSocket, fast: bool) -> None:
        await ws.accept()
        await ws.send_json({"fast": fast, "app": ws.app is app, "q": ws.query_params.get("q")})
        await ws.close()

    @app.websocket("/live")
    async def routed(ws: WebSocket):
        await answer(ws, False)

    @app.websocket("/other")
    async def other(ws: WebSocket):
        await answer(ws, False)

    app.add_middleware(Watch)
    app.sockets = {"/live": lambda ws: answer(ws, True)}
    return app, passed


async def _socket(app, path: str, root_path: str = "") -> dict:
    """One socket through the ASGI app as a server would open it → what the app sent as JSON."""
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "path": root_path + path, "root_path": root_path,
             "raw_path": (root_path + path).encode(), "query_string": b"q=1", "headers": [], "subprotocols": []}
    incoming, sent = [{"type": "websocket.connect"}], []

    async def receive():
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send", "websocket.close"]
    return json.loads(sent[1]["text"])


async def test_a_listed_socket_skips_every_middleware_and_the_rest_are_routed():
    app, passed = _socket_app()
    assert await _socket(app, "/live") == {"fast": True, "app": True, "q": "1"}
    assert passed == []
    assert await _socket(app, "/other") == {"fast": False, "app": True, "q": "1"}
    assert passed == ["/other"]
    # Behind a path prefix (root_path) the router matches, as before: the same socket, through the middleware.
    assert (await _socket(app, "/live", root_path="/qz"))["fast"] is False
    assert passed == ["/other", "/qz/live"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        assert (await c.get("/live")).status_code == 404  # HTTP on the socket's path: routed as before
