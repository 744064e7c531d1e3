"""The socket protocol as a pure state machine (sans-I/O, like python-websockets): text in →
actions out. No sockets, no Redis, no clock: `mobile_api.ws` is the thin asyncio shell that
performs the actions, and the unit tests drive this class directly.

Server → client envelope: `{"type", "seq", "ts", "data"}`. Stream messages (offer, offer.withdrawn,
assignment.updated, lead.updated; on the board lead.created, lead.updated, team.updated, stats)
carry the stream's seq; `result` and `ping` are not part of the stream (`seq` null, never replayed).
Client → server: `hello`, `ack`, `accept|decline|arrive|checkin|complete`, `location`, `status`."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import orjson

COMMANDS = frozenset({"accept", "decline", "arrive", "checkin", "complete", "location", "status"})
ASSIGNMENT_COMMANDS = frozenset({"accept", "decline", "arrive", "checkin", "complete"})
MAX_MESSAGE = 64 * 1024

# Close codes (4xxx: application): the client should fix its credentials, or just resume.
UNAUTHORIZED, FORBIDDEN, SLOW, PROTOCOL = 4401, 4403, 4408, 4400


class Phase(Enum):
    AWAIT_HELLO = "await_hello"
    OPEN = "open"
    CLOSED = "closed"


# ---------------------------------------------------------------- actions for the shell


@dataclass(frozen=True, slots=True)
class Send:
    text: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Check `token`; then call `authenticated(...)` or `auth_failed(...)`."""
    token: str


@dataclass(frozen=True, slots=True)
class Replay:
    """Read the stream after `after_seq` and `deliver` each message in order."""
    after_seq: int


@dataclass(frozen=True, slots=True)
class Command:
    """Run a use case; answer with `result(id, ...)`."""
    kind: str
    id: Any
    data: dict


@dataclass(frozen=True, slots=True)
class Pushed:
    """Offers that went out on the socket: record `offer_delivery.pushed_at`."""
    assignment_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Acked:
    """Offers the client acknowledged: record `offer_delivery.acked_at`."""
    assignment_ids: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


def envelope(type_: str, data: dict | None, ts: str, seq: int | None = None, **extra) -> str:
    return orjson.dumps({"type": type_, "seq": seq, "ts": ts, "data": data or {}, **extra}).decode()


@dataclass(slots=True)
class ServerProtocol:
    """One connection. `authenticated_as` is set when the upgrade carried a valid header."""
    board: bool = False
    authenticated_as: Any = None
    token_version: int = 0  # of the token it opened with; the shell re-checks it against the user
    last_seq: int | None = None
    phase: Phase = Phase.AWAIT_HELLO
    last_sent: int = 0  # the highest stream seq sent on this connection (resume point)
    acked: int = 0
    _offers: dict[int, int] = field(default_factory=dict)  # seq → assignment id, until acked

    # -------------------------------------------------------- opening
    def start(self) -> list:
        """Called once the socket is accepted."""
        if self.authenticated_as is not None:
            return self._open(self.last_seq)
        return []

    def authenticated(self, principal: Any, last_seq: int | None = None) -> list:
        self.authenticated_as = principal
        return self._open(last_seq if last_seq is not None else self.last_seq)

    def auth_failed(self, why: str) -> list:
        return self._close(UNAUTHORIZED, why)

    def forbidden(self, why: str) -> list:
        return self._close(FORBIDDEN, why)

    def hello_timeout(self) -> list:
        return self._close(UNAUTHORIZED, "no hello within the time allowed") if self.phase is Phase.AWAIT_HELLO \
            else []

    def _open(self, last_seq: int | None) -> list:
        self.phase = Phase.OPEN
        self.last_sent = max(0, last_seq or 0)
        self.acked = self.last_sent
        return [Replay(self.last_sent)]

    def _close(self, code: int, reason: str) -> list:
        self.phase = Phase.CLOSED
        return [Close(code, reason)]

    # -------------------------------------------------------- client → server
    def receive(self, text: str | bytes) -> list:
        if self.phase is Phase.CLOSED:
            return []
        if len(text) > MAX_MESSAGE:
            return self._close(PROTOCOL, "message too large")
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            return self._reply_or_close(None, "malformed JSON")
        if not isinstance(msg, dict) or not isinstance(msg.get("type"), str):
            return self._reply_or_close(None, "a message is an object with a string `type`")
        kind, cid = msg["type"], msg.get("id")
        if self.phase is Phase.AWAIT_HELLO:
            if kind != "hello":
                return self._close(UNAUTHORIZED, "authenticate first: send hello with a token")
            token, last = msg.get("token"), msg.get("last_seq")
            if not isinstance(token, str) or not token:
                return self._close(UNAUTHORIZED, "hello needs a token")
            if last is not None and (not isinstance(last, int) or isinstance(last, bool) or last < 0):
                return self._close(PROTOCOL, "last_seq must be a non-negative integer")
            self.last_seq = last
            return [Authenticate(token)]
        if kind == "hello":
            return [self.result(cid, False, "already authenticated")]
        if kind == "ack":
            return self._ack(msg.get("seq"), cid)
        if kind == "pong":
            return []
        if self.board:
            return [self.result(cid, False, f"the board socket takes no {kind!r}")]
        if kind not in COMMANDS:
            return [self.result(cid, False, f"unknown message type {kind!r}")]
        if kind in ASSIGNMENT_COMMANDS:
            aid = msg.get("assignment_id")
            if not isinstance(aid, int) or isinstance(aid, bool) or not 1 <= aid < 2 ** 63:
                return [self.result(cid, False, "assignment_id: a positive integer is required")]
        data = {k: v for k, v in msg.items() if k not in ("type", "id")}
        return [Command(kind, cid, data)]

    def _reply_or_close(self, cid, why: str) -> list:
        if self.phase is Phase.AWAIT_HELLO:
            return self._close(PROTOCOL, why)
        return [self.result(cid, False, why)]

    def _ack(self, seq, cid) -> list:
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            return [self.result(cid, False, "seq: a non-negative integer is required")]
        seq = min(seq, self.last_sent)  # one cannot ack what was not sent
        self.acked = max(self.acked, seq)
        done = sorted(s for s in self._offers if s <= seq)
        ids = tuple(self._offers.pop(s) for s in done)
        return [Acked(ids)] if ids else []

    def result(self, cid, ok: bool, error: str | None = None, data: dict | None = None, ts: str = "") -> Send:
        extra = {"id": cid, "ok": ok}
        if error is not None:
            extra["error"] = error
        return Send(envelope("result", data, ts, None, **extra))

    # -------------------------------------------------------- server → client
    def deliver(self, seq: int, text: str, msg: dict | None = None, replayed: bool = False) -> list:
        """A stream message (from the live fan-out, or `replayed` from the stream). Older than what was
        sent → dropped (nothing twice); a live one past a gap → a replay from what was sent (nothing
        missed). A replay may skip seqs only where the stream no longer holds them (older than 24 h)."""
        if self.phase is not Phase.OPEN or seq <= self.last_sent:
            return []
        if seq > self.last_sent + 1 and not replayed:
            return [Replay(self.last_sent)]
        self.last_sent = seq
        out: list = [Send(text)]
        msg = msg if msg is not None else orjson.loads(text)
        if msg.get("type") == "offer":
            aid = (msg.get("data") or {}).get("assignment_id")
            if isinstance(aid, int):
                self._offers[seq] = aid
                if len(self._offers) > 1000:  # a client that never acks: forget the oldest
                    self._offers.pop(min(self._offers))
                out.append(Pushed((aid,)))
        return out

    def overflow(self) -> list:
        """The send queue is full: drop the connection; the client resumes from its last seq."""
        return self._close(SLOW, "too slow: reconnect with hello and last_seq to resume")
