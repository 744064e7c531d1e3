"""Pushes and jobs that go out only after the transaction that caused them commits.

Any package queues on the session (`push(session, ...)`, `after_commit(session, fn)`); one
SQLAlchemy `after_commit` listener sends them, and a rollback drops them — no ghost offer, no
ghost job. The process says once how to send (`configure`): the API and the workers each give
their Redis client and what to do with a visit that needs a squad.

Messages go to per-user Redis Streams (`quanzu:ws:s:<user>`, `quanzu:ws:s:board` for screens):
one Lua script takes the next seq of that stream, appends the envelope `{type, seq, ts, data}`
and publishes it on `quanzu:ws:live` for every API process, atomically — so the seq order, the
stream and the live fan-out never disagree. Board helpers (`publish_lead_updated`, ...) may be
called by any package after its commit."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta, timezone

import orjson
from sqlalchemy import event
from sqlalchemy.orm import Session

from service.core import clock
from service.core.logging import log

BOARD = "board"  # the screens' stream (seq per board stream)
LIVE_CHANNEL = "quanzu:ws:live"
ONLINE = "quanzu:ws:online"  # sorted set: username → until when its socket counts as live
STREAM_MAXLEN = 20_000  # per user; a day of offers is far fewer. Replay also stops at 24 h (by ts).
STREAM_TTL_S = 25 * 3600


def stream_key(target: str) -> str:
    return f"quanzu:ws:s:{target}"


def seq_key(target: str) -> str:
    return f"quanzu:ws:q:{target}"


_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
local msg = '{"type":' .. cjson.encode(ARGV[1]) .. ',"seq":' .. seq .. ',"ts":' .. cjson.encode(ARGV[3])
    .. ',"data":' .. ARGV[2] .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], seq .. '-1', 'm', msg)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[4] .. '\\n' .. msg)
return seq
"""


@dataclass(frozen=True, slots=True)
class Push:
    target: str  # a username, or BOARD
    type: str
    data: dict


_TZ = timezone(timedelta(hours=8))  # the center's zone, as every time on the wire


def _iso_now() -> str:
    return clock.now().astimezone(_TZ).isoformat(timespec="milliseconds")


def _args(p: Push) -> tuple[list[str], list]:
    return ([seq_key(p.target), stream_key(p.target)],
            [p.type, orjson.dumps(p.data).decode(), _iso_now(), p.target, STREAM_MAXLEN, STREAM_TTL_S, LIVE_CHANNEL])


def publish(redis, pushes: Iterable[Push]) -> list[int]:
    """Send now (sync Redis), in order, one round trip; → the seqs given."""
    pushes = list(pushes)
    if not pushes:
        return []
    script = redis.register_script(_PUBLISH)
    pipe = redis.pipeline(transaction=False)
    for p in pushes:
        keys, args = _args(p)
        script(keys=keys, args=args, client=pipe)
    return pipe.execute()


# ---------------------------------------------------------------- after commit


class _Config:
    redis = None  # sync Redis client of this process
    on_visit: Callable[[list[int]], None] | None = None  # visits need a squad (enqueue a job, or dispatch inline)


config = _Config()


def configure(redis, on_visit: Callable[[list[int]], None] | None = None) -> None:
    config.redis, config.on_visit = redis, on_visit


def after_commit(session: Session, fn: Callable[[], None]) -> None:
    session.info.setdefault("quanzu_after_commit", []).append(fn)


def push(session: Session, target: str, type_: str, data: dict) -> None:
    session.info.setdefault("quanzu_pushes", []).append(Push(target, type_, data))


def visit_needs_squad(session: Session, visit_id: int) -> None:
    """After commit, the visit is dispatched (by the process's `on_visit`, all of a transaction's visits
    together); the sweep catches any lost."""
    ids = session.info.get("quanzu_visits")
    if ids is None:
        ids = session.info["quanzu_visits"] = []

        def go() -> None:
            if config.on_visit is not None and ids:
                config.on_visit(list(ids))
        after_commit(session, go)
    ids.append(visit_id)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    # Fires for a savepoint's release too (begin_nested); what is queued leaves with the root's end.
    session.info["quanzu_committed"] = True


@event.listens_for(Session, "after_soft_rollback")
def _drop(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction is gone, not a savepoint
        for key in ("quanzu_pushes", "quanzu_after_commit", "quanzu_committed", "quanzu_visits"):
            session.info.pop(key, None)


@event.listens_for(Session, "after_transaction_end")
def _send(session: Session, transaction) -> None:
    if transaction.parent is not None or not session.info.pop("quanzu_committed", False):
        return
    pushes = session.info.pop("quanzu_pushes", None)
    todo = session.info.pop("quanzu_after_commit", None)
    session.info.pop("quanzu_visits", None)
    if pushes and config.redis is not None:
        try:
            publish(config.redis, pushes)
        except Exception as exc:  # Redis away: the rows are committed; the screen/sweep catches up
            log.warning("push_failed", pushes=len(pushes), error=str(exc))
    for fn in todo or ():
        try:
            fn()
        except Exception as exc:
            log.warning("after_commit_failed", error=str(exc))


# ---------------------------------------------------------------- board events (after commit)


def publish_lead_updated(redis, lead_id: int, summary: dict) -> None:
    """`lead.updated` on the board: call after the commit that changed the lead (any package)."""
    publish(redis, [Push(BOARD, "lead.updated", {"lead_id": lead_id, **summary})])


def publish_lead_created(redis, leads: list[dict]) -> None:
    publish(redis, [Push(BOARD, "lead.created", d) for d in leads])


def board(session: Session, type_: str, data: dict) -> None:
    """Queue a board event on the session: sent with its commit."""
    push(session, BOARD, type_, data)


# ---------------------------------------------------------------- presence (who has a live socket)


def online(redis, usernames: list[str]) -> set[str]:
    """The users with a live socket on some API process (refreshed by the processes' heartbeats)."""
    if not usernames or redis is None:
        return set()
    now = time.time()
    scores = redis.zmscore(ONLINE, usernames)
    return {u for u, s in zip(usernames, scores) if s is not None and s > now}


def online_of_config(usernames: list[str]) -> set[str]:
    try:
        return online(config.redis, usernames)
    except Exception as exc:  # Redis away: count nobody as reachable, the SMS goes out
        log.warning("presence_unavailable", error=str(exc))
        return set()
