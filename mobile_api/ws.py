"""The asyncio shell around mobile_api.protocol: sockets in and out, Redis streams, the database.

`GET /api/v1/ws` (squads and anyone signed in: their own stream) and `GET /api/v1/board/ws`
(center screens: their district's board stream; the city center's, the city's — every district's —
or one district's with `?district=CODE`). Auth by `Authorization: Bearer` on the upgrade, or a `hello`
within `WS_HELLO_SECONDS`; never a token in the query string. One writer task per socket sends
everything, from a bounded inbox: a client that cannot keep up is dropped and resumes."""
from __future__ import annotations

import asyncio

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from dispatch import flows, metrics, outbox
from dispatch.field import service as svc
from dispatch.field import squads
from dispatch.field.schemas import CompleteIn, DeclineIn, LocationIn, PhoneTimeIn, StatusIn
from mobile_api import protocol as p
from mobile_api.connections import RECHECK, RESYNC, Connection
from service.core import clock
from service.core.auth import CENTER_ROLES, check_current, read_access_token
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
    conn = Connection(target, settings.ws_send_queue)
    hub = app.state.hub
    await hub.register(conn, presence=not board)
    sockets = metrics.SOCKETS.labels("board" if board else "squad")
    sockets.inc()
    try:
        # The actions of opening (a Replay) run first, before any live message of the inbox.
        for a in actions:
            conn.offer(a)
        reader = asyncio.create_task(_read(ws, proto, conn, app, who))
        writer = asyncio.create_task(_write(ws, proto, conn, app, who, target))
        dropped = asyncio.create_task(conn.dropped.wait())
        done, pending = await asyncio.wait({reader, writer, dropped}, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if dropped in done:
            await _close(ws, proto.overflow())
    finally:
        sockets.dec()
        await hub.unregister(conn, presence=not board)


def _code(value: str | None) -> str | None:
    return value if value and len(value) <= 64 and value.replace("-", "").replace("_", "").isalnum() else None


async def _auth(proto: p.ServerProtocol, app, token: str, board: bool) -> list:
    try:
        who, version = read_access_token(token, app.state.settings.secret_key)
        await check_current(app.state.intake_pool, who, version)
    except AppError as exc:
        return proto.auth_failed(str(exc.detail))
    except Exception as exc:  # the database away: the client retries
        log.warning("ws_auth_unavailable", error=str(exc))
        return proto.auth_failed("cannot check the token now; retry")
    if board and who.role not in CENTER_ROLES:
        return proto.forbidden("the board is for center roles")
    proto.token_version = version
    return proto.authenticated(who)


async def _still_current(app, proto: p.ServerProtocol) -> bool:
    """The socket's token still speaks for its user (not signed out, deactivated, moved or re-roled)."""
    try:
        await check_current(app.state.intake_pool, proto.authenticated_as, proto.token_version)
    except AppError:
        return False
    except Exception as exc:  # the database away: keep the socket, check again later
        log.warning("ws_recheck_unavailable", error=str(exc))
    return True


async def _close(ws: WebSocket, actions: list) -> None:
    close = next((a for a in actions if isinstance(a, p.Close)), p.Close(1000, ""))
    try:
        await ws.close(close.code, close.reason)
    except Exception:  # already gone
        pass


async def _read(ws: WebSocket, proto: p.ServerProtocol, conn: Connection, app, who) -> None:
    """Client → server. Results go through the writer (the one sender)."""
    while True:
        try:
            text = await ws.receive_text()
        except (WebSocketDisconnect, RuntimeError, KeyError):
            return
        for a in proto.receive(text):
            if isinstance(a, p.Command):
                conn.offer(await _command(app, who, proto, a))
            elif isinstance(a, p.Acked):
                _bookkeep(app, svc.mark_acked, who.name, list(a.assignment_ids))
            else:
                conn.offer(a)
            if isinstance(a, p.Close):
                return


async def _write(ws: WebSocket, proto: p.ServerProtocol, conn: Connection, app, who, target: str) -> None:
    hub = app.state.hub
    ping_every = app.state.settings.ws_ping_seconds
    recheck_every = app.state.settings.ws_recheck_seconds
    loop = asyncio.get_running_loop()
    ping_at, next_check = loop.time() + ping_every, loop.time() + recheck_every

    async def do(actions) -> bool:
        for a in actions:
            if isinstance(a, p.Send):
                await ws.send_text(a.text)
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

    while True:
        try:
            item = await asyncio.wait_for(conn.inbox.get(), max(0.0, min(ping_at, next_check) - loop.time()))
        except TimeoutError:
            item = None
        now = loop.time()
        if item is RECHECK or now >= next_check:  # a bumped token version ends the socket
            next_check = now + recheck_every
            if not await _still_current(app, proto):
                await _close(ws, proto.auth_failed("token no longer valid: sign in again"))
                return
            if item is RECHECK:
                continue
        if item is None:
            if now >= ping_at:
                ping_at = now + ping_every
                try:
                    await ws.send_text(p.envelope("ping", {}, _now()))
                except (WebSocketDisconnect, RuntimeError, OSError):
                    return
            continue
        ping_at = now + ping_every
        try:
            if item is RESYNC:
                ok = await do([p.Replay(proto.last_sent)])
            elif isinstance(item, tuple):
                ok = await do(proto.deliver(*item))
            else:
                ok = await do([item])
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        if not ok:
            return


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
