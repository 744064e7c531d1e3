"""Live connections of one API process, and the Redis fan-out that feeds them.

Every process subscribes to its deployment's pub/sub channel (`<ns>:ws:live`); the Lua publish
script (dispatch.outbox) puts each message in its stream and on that channel at once, headed by
the stream's key, so a squad connected to process B gets what a worker or process A sent. A
message is delivered only to the sockets of the stream it names, and only when that stream is one
of this deployment's: nothing from elsewhere moves a socket's seq. The same subscription hears
`<ns>:auth` (a user's tokens ended, an API key revoked), so open sockets are re-checked at once. Pub/sub may lose a message (a
reconnect): each connection notices the seq gap, or resyncs after a reconnect, and replays
from the stream — pub/sub is only the fast path, the stream is the truth."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import orjson

from dispatch.outbox import SEQ_FLOOR, is_board, live_channel, online_key, seq_key, stream_key
from service.core.logging import log
from service.core.redis import auth_channel

PRESENCE_TTL_S = 30.0
HEARTBEAT_S = 10.0
RESYNC = object()  # put on every inbox after the subscription was lost and restored
RECHECK = object()  # the user's token version may have changed: check it now


class Connection:
    """One socket's bounded inbox: stream messages (seq, text) and the shell's own items."""

    __slots__ = ("target", "inbox", "dropped")

    def __init__(self, target: str, maxsize: int):
        self.target = target
        self.inbox: asyncio.Queue = asyncio.Queue(maxsize)
        self.dropped = asyncio.Event()

    def offer(self, item) -> None:
        try:
            self.inbox.put_nowait(item)
        except asyncio.QueueFull:  # a slow client: drop it, it resumes from its last seq
            self.dropped.set()


class Hub:
    def __init__(self, aredis, replay_hours: float = 24.0, on_keys_changed=None):
        self.aredis = aredis
        self.on_keys_changed = on_keys_changed  # an API key was revoked or changed: forget cached keys
        self.live, self.auth, self.online = live_channel(), auth_channel(), online_key()
        self.stream_prefix = stream_key("").encode()
        self.foreign = 0  # messages on our channel naming no stream of ours (never delivered)
        self.replay_window = timedelta(hours=replay_hours)
        self.conns: dict[str, set[Connection]] = {}
        self._tasks: list[asyncio.Task] = []
        self.subscribed = asyncio.Event()

    # -------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="ws-fanout"),
                       asyncio.create_task(self._heartbeat(), name="ws-presence")]
        try:
            await asyncio.wait_for(self.subscribed.wait(), 5)
        except TimeoutError:
            log.warning("ws_fanout_not_subscribed")

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        users = [u for u in self.conns if u]
        if users:
            try:
                await self.aredis.zrem(self.online, *users)
            except Exception:  # Redis away at shutdown: the presence entries expire by themselves
                pass

    async def _listen(self) -> None:
        first = True
        while True:
            pubsub = self.aredis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.live, self.auth)
                self.subscribed.set()
                if not first:  # messages may have gone by while we were away: every socket replays
                    for conns in self.conns.values():
                        for c in conns:
                            c.offer(RESYNC)
                            c.offer(RECHECK)
                    self._keys_changed()
                first = False
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        if message["channel"] == self.auth.encode():
                            self._auth_event(message["data"])
                        else:
                            self._fan_out(message["data"])
            except asyncio.CancelledError:
                await pubsub.aclose()
                raise
            except Exception as exc:
                log.warning("ws_fanout_lost", error=str(exc))
                try:
                    await pubsub.aclose()
                except Exception:
                    pass
                await asyncio.sleep(0.5)

    def _fan_out(self, data: bytes) -> None:
        stream, _, text = data.partition(b"\n")
        if not stream.startswith(self.stream_prefix):
            self.foreign += 1
            return
        conns = self.conns.get(stream[len(self.stream_prefix):].decode())
        if not conns:
            return
        msg = orjson.loads(text)
        item = (msg["seq"], text.decode(), msg)
        for c in conns:
            c.offer(item)

    def _auth_event(self, data: bytes) -> None:
        kind, _, name = data.decode(errors="replace").partition(":")
        if kind == "user":  # that user's own sockets, and the screens (each re-checks its own token)
            for target in (name, *(t for t in self.conns if is_board(t))):  # the city's and districts' screens
                for c in tuple(self.conns.get(target, ())):
                    c.offer(RECHECK)
        elif kind == "keys":
            self._keys_changed()

    def _keys_changed(self) -> None:
        if self.on_keys_changed is not None:
            self.on_keys_changed()

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_S)
            users = [u for u in self.conns if u and not is_board(u)]
            if users:
                try:
                    until = time.time() + PRESENCE_TTL_S
                    await self.aredis.zadd(self.online, {u: until for u in users})
                    await self.aredis.zremrangebyscore(self.online, "-inf", time.time())
                except Exception as exc:
                    log.warning("ws_presence_failed", error=str(exc))

    # -------------------------------------------------------- connections
    async def register(self, conn: Connection, presence: bool) -> None:
        self.conns.setdefault(conn.target, set()).add(conn)
        if presence:
            await self.aredis.zadd(self.online, {conn.target: time.time() + PRESENCE_TTL_S})

    async def unregister(self, conn: Connection, presence: bool) -> None:
        conns = self.conns.get(conn.target)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.conns[conn.target]
                if presence:
                    try:
                        await self.aredis.zrem(self.online, conn.target)
                    except Exception:
                        pass

    async def replay(self, target: str, after_seq: int, count: int = 500) -> list[tuple[int, str]]:
        """Stream messages with seq > after_seq kept in the replay window, in order. A stream whose
        counter is behind `after_seq` lost its data with Redis: the counter goes on from there, so
        that the next messages reach this socket (what was lost, the sweep pushes again: offers)."""
        if after_seq > 0:
            was = await self.aredis.eval(SEQ_FLOOR, 1, seq_key(target), after_seq)
            if was >= 0:
                log.warning("ws_seq_restored", target=target, counter=was, restored_to=after_seq)
        out: list[tuple[int, str]] = []
        start = f"{after_seq + 1}-0"
        oldest = datetime.now().astimezone() - self.replay_window
        while True:
            rows = await self.aredis.xrange(stream_key(target), min=start, max="+", count=count)
            for rid, fields in rows:
                text = fields[b"m"].decode()
                seq = int(rid.split(b"-")[0])
                ts = orjson.loads(text).get("ts")
                if ts and datetime.fromisoformat(ts) < oldest:
                    continue
                out.append((seq, text))
            if len(rows) < count:
                return out
            start = f"({rows[-1][0].decode()}"
