"""The asyncio shell around mobile_api.protocol: sockets in and out, Redis streams, the database.

`GET /api/v1/ws` (squads and anyone signed in: their own stream) and `GET /api/v1/board/ws`
(center screens: their district's board stream; the city center's, the city's — every district's —
or one district's with `?district=CODE`). Auth by `Authorization: Bearer` on the upgrade, or a `hello`
within `WS_HELLO_SECONDS`; never a token in the query string. One writer task per socket sends
everything, from a bounded inbox: a client that cannot keep up is dropped and resumes. The upgrade's
own task reads; pings and token re-checks come from the hub (mobile_api.connections), one tick for all
sockets: no timer, no task per socket beyond the writer (a socket's memory: bench/sockets.py)."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from dispatch import flows, metrics, outbox
from dispatch.field import service as svc
from dispatch.field import squads
from dispatch.field.schemas import CompleteIn, DeclineIn, LocationIn, PhoneTimeIn, StatusIn
from mobile_api import protocol as p
from mobile_api.connections import ENDED, PING, RESYNC, Connection
from service.core import clock
from service.core.auth import CENTER_ROLES, NOT_CURRENT, read_access_token
from service.core.db import unit_of_work
from service.core.errors import AppError
from service.core.logging import log

router = APIRouter()
_background: set[asyncio.Task] = set()
_now = clock.now_iso


def _bearer(ws: WebSocket) -> str | None:
    h = ws.headers.get("authorization")
    return h[7:].strip() if h and h[:7].lower() == "bearer " else None


@router.websocket("/api/v1/ws")
async def squad_socket(ws: WebSocket):
    await serve(ws, board=False)


@router.websocket("/api/v1/board/ws")
async def board_socket(ws: WebSocket):
    await serve(ws, board=True)


async def serve(ws: WebSocket, board: bool) -> None:
    app = ws.app
    settings = app.state.settings
    q = ws.query_params.get("last_seq")
    last_seq = int(q) if q is not None and q.isdigit() and len(q) < 19 else None
    proto = p.ServerProtocol(board=board, last_seq=last_seq)
    await ws.accept()
    token = _bearer(ws)
    actions: list = []
    if token:
        actions = await _auth(proto, app, token, board)
    else:
        try:
            text = await asyncio.wait_for(ws.receive_text(), settings.ws_hello_seconds)
        except TimeoutError:
            actions = proto.hello_timeout()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return
        else:
            actions = proto.receive(text)
            if actions and isinstance(actions[0], p.Authenticate):
                actions = await _auth(proto, app, actions[0].token, board)
    if proto.phase is not p.Phase.OPEN:
        await _close(ws, actions)
        return
    who = proto.authenticated_as
    # A district's screens get their district's board stream; the city center's, the city's (all), or
    # one district's when the screen asks for it (`?district=CODE`: a wall showing one district).
    wanted = ws.query_params.get("district") if who.district is None else None
    target = outbox.board_stream(who.district or _code(wanted)) if board else who.name
    conn = Connection(target, settings.ws_send_queue, proto)
    hub = app.state.hub
    await hub.register(conn, presence=not board)
    sockets = metrics.SOCKETS.labels("board" if board else "squad")
    sockets.inc()
    try:
        # The actions of opening (a Replay) run first, before any live message of the inbox; then a
        # ping, so a phone with nothing to replay knows at once that it is connected (not at the
        # first ping of the hub's tick, up to WS_PING_SECONDS later).
        for a in actions:
            conn.offer(a)
        conn.offer(p.Send(p.envelope("ping", {}, _now())))
        conn.writer = writer = asyncio.create_task(_write(ws, proto, conn, app, who, target))
        closing = await _read(ws, proto, conn, app, who)
        if closing:  # the writer sends what it has, then the close
            await asyncio.wait({writer}, timeout=settings.ws_hello_seconds)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    finally:
        sockets.dec()
        await hub.unregister(conn, presence=not board)


def _code(value: str | None) -> str | None:
    return value if value and len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum() else None


async def _auth(proto: p.ServerProtocol, app, token: str, board: bool) -> list:
    try:
        who, version = read_access_token(token, app.state.settings.secret_key)
        current = await app.state.hub.check((who, version))  # with the others opening now: one query
    except AppError as exc:
        return proto.auth_failed(str(exc.detail))
    except Exception as exc:  # the database away: the client retries
        log.warning("ws_auth_unavailable", error=str(exc))
        return proto.auth_failed("cannot check the token now; retry")
    if not current:
        return proto.auth_failed(NOT_CURRENT)
    if board and who.role not in CENTER_ROLES:
        return proto.forbidden("the board is for center roles")
    proto.token_version = version
    return proto.authenticated(who)


async def _close(ws: WebSocket, actions: list) -> None:
    close = next((a for a in actions if isinstance(a, p.Close)), p.Close(1000, ""))
    try:
        await ws.close(close.code, close.reason)
    except Exception:  # already gone
        pass


async def _read(ws: WebSocket, proto: p.ServerProtocol, conn: Connection, app, who) -> bool:
    """Client → server, in the upgrade's own task. Results go through the writer (the one sender).
    → True when the protocol closes the socket (the writer sends the close), False when the client left
    or the writer closed it."""
    while True:
        try:
            text = await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return False
        for a in proto.receive(text):
            if isinstance(a, p.Command):
                conn.offer(await _command(app, who, proto, a))
            elif isinstance(a, p.Acked):
                _bookkeep(app, svc.mark_acked, who.name, list(a.assignment_ids))
            else:
                conn.offer(a)
            if isinstance(a, p.Close):
                return True


async def _write(ws: WebSocket, proto: p.ServerProtocol, conn: Connection, app, who, target: str) -> None:
    """Server → client: the socket's one sender. Cancelled by a full inbox (the client is too slow:
    closed with SLOW, it resumes) or when the reader ends."""
    hub = app.state.hub

    async def send(text: str) -> None:
        conn.quiet = False
        await ws.send_text(text)

    async def do(actions) -> bool:
        for a in actions:
            if isinstance(a, p.Send):
                await send(a.text)
            elif isinstance(a, p.Replay):
                for seq, text in await hub.replay(target, a.after_seq):
                    if not await do(proto.deliver(seq, text, replayed=True)):
                        return False
            elif isinstance(a, p.Pushed):
                _bookkeep(app, svc.mark_pushed, who.name, list(a.assignment_ids))
            elif isinstance(a, p.Close):
                await ws.close(a.code, a.reason)
                return False
        return True

    try:
        while True:
            item = await conn.get()
            if item is PING:  # the hub's tick: a socket quiet since the last one is pinged
                if conn.quiet:
                    await ws.send_text(p.envelope("ping", {}, _now()))
                conn.quiet = True
                continue
            if item is ENDED:  # the hub's re-check: a bumped token version ends the socket
                await _close(ws, proto.auth_failed("token no longer valid: sign in again"))
                return
            if item is RESYNC:
                ok = await do([p.Replay(proto.last_sent)])
            elif isinstance(item, tuple):
                ok = await do(proto.deliver(*item))
            else:
                ok = await do([item])
            if not ok:
                return
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    except asyncio.CancelledError:
        if not conn.dropped:
            raise
        asyncio.current_task().uncancel()  # our own drop: close it as too slow, it resumes
        await _close(ws, proto.overflow())
    except Exception as exc:  # Redis away while replaying: close, the client resumes from its last seq
        log.warning("ws_writer_failed", error=str(exc))
        await _close(ws, [p.Close(1011, "try again: resume from your last seq")])


def _bookkeep(app, fn, username: str, ids: list[int]) -> None:
    """Delivery receipts (pushed / acked) are written beside the socket, never in its way."""
    async def go():
        try:
            async with unit_of_work(app.state.sessionmaker) as s:
                await s.run_sync(lambda ss: fn(ss, username, ids))
        except Exception as exc:
            log.warning("delivery_receipt_failed", error=str(exc))
    t = asyncio.create_task(go())
    _background.add(t)
    t.add_done_callback(_background.discard)


def _at(d: dict) -> dict:
    return {"at": d["at"]} if d.get("at") is not None else {}


async def _command(app, who, proto: p.ServerProtocol, c: p.Command):
    """The socket's accept / decline / arrive / checkin / complete / location / status: the same use cases as REST."""
    cfg, policy = app.state.field_config, app.state.policy
    redis = app.state.redis
    online = (lambda names: outbox.online(redis, names))
    d = c.data
    try:
        if c.kind == "accept":
            fn, args = svc.accept, (d["assignment_id"], who, PhoneTimeIn.model_validate(_at(d)).at)
        elif c.kind == "decline":
            fn, args = svc.decline, (d["assignment_id"], who, DeclineIn.model_validate(d).reason, cfg, online)
        elif c.kind == "arrive":
            fn, args = flows.arrive, (d["assignment_id"], who, policy, PhoneTimeIn.model_validate(_at(d)).at)
        elif c.kind == "checkin":
            fn, args = flows.checkin, (d["assignment_id"], who, policy, PhoneTimeIn.model_validate(_at(d)).at)
        elif c.kind == "complete":
            fn, args = flows.complete_visit, (d["assignment_id"], who, CompleteIn.model_validate(d).completion(), policy)
        elif c.kind == "location":
            b = LocationIn.model_validate(d)
            fn, args = squads.set_location, (who, b.lon, b.lat, b.crs.value, b.accuracy_m, b.at)
        else:
            fn, args = squads.set_status, (who, StatusIn.model_validate(d).status)
        async with unit_of_work(app.state.sessionmaker, app.state.on_commit) as s:
            out = await s.run_sync(lambda ss: fn(ss, *args))
        return proto.result(c.id, True, data=out, ts=_now())
    except ValidationError as exc:
        detail = [{"field": ".".join(str(x) for x in e["loc"]), "message": e["msg"]} for e in exc.errors()]
        return proto.result(c.id, False, "validation_error", data={"detail": detail}, ts=_now())
    except AppError as exc:
        return proto.result(c.id, False, exc.code, data={"detail": exc.detail}, ts=_now())
