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
CHECK_BATCH = 5000  # tokens checked in one query
PING_CHUNK = 1000  # sockets offered a ping at a time (a tick of 20,000 would stall the loop)
RESYNC = object()  # put on every inbox after the subscription was lost and restored
PING = object()  # the hub's ping tick: the writer pings a socket that sent nothing since the last tick
ENDED = object()  # the hub found the socket's token no longer current: close it


class Connection:
    """One socket's bounded inbox: stream messages (seq, text, msg) and the shell's own items, read
    by its one writer task. A list and a future, not an asyncio.Queue and an Event: at 20,000 sockets
    a process, every socket's bytes count (bench/sockets.py). Full → the connection is dropped: the
    writer is cancelled (it may be stuck sending to that slow client) and closes it as too slow."""

    __slots__ = ("target", "maxsize", "items", "waiter", "dropped", "writer", "proto", "quiet")

    def __init__(self, target: str, maxsize: int, proto=None):
        self.target, self.maxsize, self.proto = target, maxsize, proto  # proto: whose token the hub re-checks
        self.items: list = []
        self.waiter: asyncio.Future | None = None
        self.dropped = False
        self.writer: asyncio.Task | None = None
        self.quiet = True  # nothing sent since the last ping tick

    def offer(self, item) -> None:
        if self.dropped:
            return
        if len(self.items) >= self.maxsize:  # a slow client: drop it, it resumes from its last seq
            self.dropped = True
            if self.writer is not None:
                self.writer.cancel()
            return
        self.items.append(item)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def get(self):
        while not self.items:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.items.pop(0)


class Batcher:
    """`await batcher(item)` → the result for `item` of `flush(items)`, called with everything asked
    while the previous flush ran (one flush in flight, at most `most` items each): a storm of 10,000
    reconnects is a few queries, a quiet socket still one at once."""

    def __init__(self, flush, most: int = CHECK_BATCH):
        self.flush, self.most = flush, most
        self.pending: list[tuple[object, asyncio.Future]] = []
        self.task: asyncio.Task | None = None

    async def __call__(self, item):
        fut = asyncio.get_running_loop().create_future()
        self.pending.append((item, fut))
        if self.task is None:
            self.task = asyncio.create_task(self._run())
        return await fut

    async def _run(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending[:self.most], self.pending[self.most:]
                try:
                    results = await self.flush([item for item, _f in batch])
                except Exception as exc:
                    for _item, f in batch:
                        if not f.done():
                            f.set_exception(exc)
                else:
                    for (_item, f), r in zip(batch, results, strict=True):
                        if not f.done():
                            f.set_result(r)
        finally:
            self.task = None


class Hub:
    """`check_tokens([(principal, version)])` → still current, each (service.core.auth.check_current_many):
    every `recheck_seconds` all sockets' tokens in a few queries, at once those of a user announced on
    the auth channel, and each new socket's (batched with the others opening then: a reconnect storm).
    Every `ping_seconds` each socket that sent nothing since the last tick gets a ping."""

    def __init__(self, aredis, replay_hours: float = 24.0, on_keys_changed=None, check_tokens=None,
                 ping_seconds: float = 20.0, recheck_seconds: float = 10.0):
        self.aredis = aredis
        self.check_tokens = check_tokens
        self.ping_seconds, self.recheck_seconds = ping_seconds, recheck_seconds
        self.check = Batcher(check_tokens)  # a new socket's token: (principal, version) → still current
        self._presence = Batcher(self._write_presence)  # users whose sockets came or went
        self.on_keys_changed = on_keys_changed  # an API key was revoked or changed: forget cached keys
        self.live, self.auth, self.online = live_channel(), auth_channel(), online_key()
        self.stream_prefix = stream_key("").encode()
        self.foreign = 0  # messages on our channel naming no stream of ours (never delivered)
        self.replay_window = timedelta(hours=replay_hours)
        self.conns: dict[str, set[Connection]] = {}
        self._tasks: list[asyncio.Task] = []
        self._rechecks: set[asyncio.Task] = set()
        self.subscribed = asyncio.Event()

    # -------------------------------------------------------- lifecycle
    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._listen(), name="ws-fanout"),
                       asyncio.create_task(self._heartbeat(), name="ws-presence"),
                       asyncio.create_task(self._ping(), name="ws-ping"),
                       asyncio.create_task(self._recheck_every(), name="ws-recheck")]
        try:
            await asyncio.wait_for(self.subscribed.wait(), 5)
        except TimeoutError:
            log.warning("ws_fanout_not_subscribed")

    async def stop(self) -> None:
        for t in (*self._tasks, *self._rechecks):
            t.cancel()
        await asyncio.gather(*self._tasks, *self._rechecks, return_exceptions=True)
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
                    self._recheck_soon(self._all())  # announcements may have gone by too
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
            targets = (name, *(t for t in self.conns if is_board(t)))  # the city's and districts' screens
            self._recheck_soon([c for t in targets for c in self.conns.get(t, ())])
        elif kind == "keys":
            self._keys_changed()

    def _keys_changed(self) -> None:
        if self.on_keys_changed is not None:
            self.on_keys_changed()

    def _all(self) -> list[Connection]:
        return [c for conns in self.conns.values() for c in conns]

    def _recheck_soon(self, conns: list[Connection]) -> None:
        t = asyncio.create_task(self._recheck(conns))
        self._rechecks.add(t)
        t.add_done_callback(self._rechecks.discard)

    async def _recheck(self, conns: list[Connection]) -> None:
        """Sockets whose token no longer speaks for its user (signed out, deactivated, moved, re-roled)
        are closed; the database away: they stay, and are checked again next time."""
        conns = [c for c in conns if c.proto is not None and c.proto.authenticated_as is not None]
        for i in range(0, len(conns), CHECK_BATCH):
            part = conns[i:i + CHECK_BATCH]
            try:
                current = await self.check_tokens([(c.proto.authenticated_as, c.proto.token_version) for c in part])
            except Exception as exc:
                log.warning("ws_recheck_unavailable", error=str(exc))
                return
            for c, ok in zip(part, current, strict=True):
                if not ok:
                    c.offer(ENDED)

    async def _recheck_every(self) -> None:
        while True:
            await asyncio.sleep(self.recheck_seconds)
            await self._recheck(self._all())

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self.ping_seconds)
            conns = self._all()
            for i in range(0, len(conns), PING_CHUNK):
                for c in conns[i:i + PING_CHUNK]:
                    c.offer(PING)
                await asyncio.sleep(0)

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
            await self._presence(conn.target)

    async def unregister(self, conn: Connection, presence: bool) -> None:
        conns = self.conns.get(conn.target)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.conns[conn.target]
                if presence:
                    try:
                        await self._presence(conn.target)
                    except Exception:
                        pass

    async def _write_presence(self, users: list[str]) -> list[None]:
        """Online are the users with a socket here now, whatever the order they came and went in
        (a socket dropped and back at once: online). One round trip for all of a storm's."""
        here = {u for u in users if u in self.conns}
        gone = set(users) - here
        pipe = self.aredis.pipeline(transaction=False)
        if here:
            pipe.zadd(self.online, {u: time.time() + PRESENCE_TTL_S for u in here})
        if gone:
            pipe.zrem(self.online, *gone)
        await pipe.execute()
        return [None] * len(users)

    async def replay(self, target: str, after_seq: int, count: int = 500) -> list[tuple[int, str]]:
        """Stream messages with seq > after_seq kept in the replay window, in order. A stream whose
        counter is behind `after_seq` lost its data with Redis: the counter goes on from there, so
        that the next messages reach this socket (what was lost, the sweep pushes again: offers)."""
        out: list[tuple[int, str]] = []
        start = f"{after_seq + 1}-0"
        oldest = datetime.now().astimezone() - self.replay_window
        floor = after_seq > 0
        while True:
            if floor:  # the floor and the first page in one round trip
                pipe = self.aredis.pipeline(transaction=False)
                pipe.eval(SEQ_FLOOR, 1, seq_key(target), after_seq)
                pipe.xrange(stream_key(target), min=start, max="+", count=count)
                was, rows = await pipe.execute()
                floor = False
                if was >= 0:
                    log.warning("ws_seq_restored", target=target, counter=was, restored_to=after_seq)
            else:
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
