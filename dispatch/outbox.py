"""The one outbox (as polar's JobQueueManager): every side effect of a unit of work — a socket push,
a board event, a visit that needs a squad, an SMS to send — is recorded on its session while it
runs, and leaves once, after the commit, through whoever owns that commit: the request's session
dependency in the API, the task's unit of work in the workers (`workers.queues.send`). A rollback
drops it: no ghost offer, no ghost job. Anything a crash loses between commit and sending is found
again by the sweeps (visits still waiting, SMS still pending, open offers a live socket never had)
and the reconciler.

Socket messages go to per-user Redis Streams (`<ns>:ws:s:<user>`; for the screens `<ns>:ws:s:board`,
the city's, which gets every board event, and `<ns>:ws:s:board:<district>`, each district's, which
gets its own district's only): one Lua script takes the stream's next seq, appends the envelope
`{type, seq, ts, data}` and publishes it, headed by its stream key, on `<ns>:ws:live` for every API
process, atomically — so the seq order, the stream and the live fan-out never disagree. `<ns>` is the
deployment's Redis namespace (service.core.redis.key): another deployment on the same Redis hears
none of it."""
from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import orjson
from redis.client import Pipeline
from redis.exceptions import NoScriptError
from sqlalchemy import event
from sqlalchemy.orm import Session

from service.core import clock
from service.core.logging import log
from service.core.redis import key

BOARD = "board"  # the city's screens' stream (seq per board stream); a district's: board_stream(code)
STREAM_MAXLEN = 20_000  # per user; a day of offers is far fewer. Replay also stops at 24 h (by ts).
STREAM_TTL_S = 25 * 3600
_KEY = "quanzu_outbox"


def live_channel() -> str:
    return key("ws:live")


def online_key() -> str:
    """Sorted set: username → until when its socket counts as live."""
    return key("ws:online")


def stream_key(target: str) -> str:
    return key(f"ws:s:{target}")


def seq_key(target: str) -> str:
    return key(f"ws:q:{target}")


_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
local msg = '{"type":' .. cjson.encode(ARGV[1]) .. ',"seq":' .. seq .. ',"ts":' .. cjson.encode(ARGV[3])
    .. ',"data":' .. ARGV[2] .. '}'
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], seq .. '-1', 'm', msg)
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[4] .. '\\n' .. msg)
return seq
"""
_PUBLISH_SHA = hashlib.sha1(_PUBLISH.encode()).hexdigest()


# A stream's counter is never below a seq a socket already holds: a Redis that came back empty (or
# lost its last writes) would otherwise number new messages with seqs the phone has seen, and the
# phone would drop them as duplicates. Raised when a socket resumes or resyncs (mobile_api).
SEQ_FLOOR = """
local c = tonumber(redis.call('GET', KEYS[1]) or '0')
if c < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
  return c
end
return -1
"""


class PushesFailed(Exception):
    """`publish` sent what `ahead` put in its pipeline, but not the pushes (the caller's job left)."""


@dataclass(frozen=True, slots=True)
class Push:
    target: str  # a username, or BOARD
    type: str
    data: dict


def publish(redis, pushes: Iterable[Push], ahead: Callable[[Pipeline], object] | None = None) -> list[int]:
    """Send now (sync Redis), in order, one round trip; → the seqs given. `ahead(pipe)` puts more
    commands in the same round trip, before the pushes (the API's rq enqueue after a commit): they
    run once, and their first error is raised after the pushes went out; when they all ran and only
    the pushes failed, the error is a `PushesFailed`."""
    pushes = list(pushes)
    if not pushes and ahead is None:
        return []
    ts = clock.now_iso()
    channel = live_channel()
    # People before screens: an offer reaches its squad's phones before the board's copies are fanned
    # out (each stream keeps its own order; the order across streams carries no meaning).
    calls = [(seq_key(p.target), stream_key(p.target), p.type, orjson.dumps(p.data).decode())
             for p in sorted(pushes, key=lambda p: is_board(p.target))]

    def run(pipe) -> list:
        for seq, stream, type_, data in calls:
            pipe.evalsha(_PUBLISH_SHA, 2, seq, stream, type_, data, ts, stream, STREAM_MAXLEN, STREAM_TTL_S, channel)
        return pipe.execute(raise_on_error=False)

    pipe = redis.pipeline(transaction=False)
    if ahead is not None:
        ahead(pipe)
    first = len(pipe.command_stack)
    done = run(pipe)
    head, seqs = done[:first], done[first:]
    # EVALSHA straight away: redis-py's Script in a pipeline asks SCRIPT EXISTS first, a round trip
    # more on every publish. A Redis without the script (restarted, flushed) fails every EVALSHA of
    # the pipeline, so none of the pushes ran: it is loaded, and they alone are sent again.
    for r in head:
        if isinstance(r, Exception):
            raise r
    try:
        if any(isinstance(r, NoScriptError) for r in seqs):
            redis.script_load(_PUBLISH)
            seqs = run(redis.pipeline(transaction=False))
        for r in seqs:
            if isinstance(r, Exception):
                raise r
    except Exception as exc:
        if ahead is None:
            raise
        raise PushesFailed(str(exc)) from exc
    return seqs


# ---------------------------------------------------------------- the outbox of a unit of work
@dataclass
class Outbox:
    pushes: list[Push] = field(default_factory=list)
    visits: list[int] = field(default_factory=list)  # visits that need a squad (field dispatch)
    sms: list = field(default_factory=list)  # SMS rows to send: ids, or rows added but not yet flushed
    squad_positions: list[tuple[str, float, float, float]] = field(default_factory=list)  # (team, lon, lat, at)
    dials: list[int] = field(default_factory=list)  # dials for a SIP line to make (dispatch.ladder.phone)
    counts: list[tuple] = field(default_factory=list)  # Prometheus counts of what it did (dispatch.metrics)
    feedback: list[str] = field(default_factory=list)  # sources with feedback rows to deliver (outcomes.feedback)
    # Rows this unit of work made and reads again before its commit (an urgent lead's new visit, offered
    # in the same transaction): held here, as the session holds flushed rows only weakly and would
    # read them back with a statement. Never sent.
    held: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pushes or self.visits or self.sms or self.squad_positions or self.dials or self.counts
                    or self.feedback)

    def sms_ids(self) -> list[int]:
        ids = [x if isinstance(x, int) else x.id for x in self.sms]
        return list(dict.fromkeys(i for i in ids if i is not None))  # a row rolled back has no id

    def mark(self) -> tuple[int, ...]:
        return (len(self.pushes), len(self.visits), len(self.sms), len(self.squad_positions), len(self.dials),
                len(self.counts), len(self.feedback))

    def rewind(self, mark: tuple[int, ...]) -> None:
        """Forget what was queued since `mark` (its savepoint was rolled back)."""
        del self.pushes[mark[0]:], self.visits[mark[1]:], self.sms[mark[2]:], self.squad_positions[mark[3]:]
        del self.dials[mark[4]:], self.counts[mark[5]:], self.feedback[mark[6]:]


def of(session: Session) -> Outbox:
    box = session.info.get(_KEY)
    if box is None:
        box = session.info[_KEY] = Outbox()
    return box


def take(session: Session) -> Outbox:
    """What the committed unit of work has to send (and forget it). Call right after commit."""
    return session.info.pop(_KEY, None) or Outbox()


def push(session: Session, target: str, type_: str, data: dict) -> None:
    of(session).pushes.append(Push(target, type_, data))


def board_stream(district: str | None) -> str:
    """The board stream of a district's screens (None: the city center's, which gets them all)."""
    return BOARD if district is None else f"{BOARD}:{district}"


def is_board(target: str) -> bool:
    return target == BOARD or target.startswith(BOARD + ":")


def board(session: Session, type_: str, data: dict, district: str | None = None, city: bool = True) -> None:
    """A board event for the screens, sent with the commit: to the city's stream (unless `city` is
    false) and to the stream of `district`, the district whose work it is (None: the city's only)."""
    if city:
        push(session, BOARD, type_, data)
    if district is not None:
        push(session, board_stream(district), type_, data)


def visit_needs_squad(session: Session, visit) -> None:
    """After commit the `visit` (a flushed Visit) is offered to a squad (field dispatch); the sweep
    catches any lost. Or before it, in the same unit of work (workers.tasks.process_urgent)."""
    box = of(session)
    box.visits.append(visit.id)
    box.held.append(visit)


def send_sms(session: Session, message) -> None:
    """An `sms_message` row (or its id) of this unit of work to hand to the gateway after commit."""
    of(session).sms.append(message)


def dial(session: Session, dial_id: int) -> None:
    """After commit the dial goes to its SIP line (an rq job on the dial queue); the sweep finds a lost one."""
    of(session).dials.append(dial_id)


def count(session: Session, counts: list[tuple]) -> None:
    """Prometheus counts (dispatch.metrics) made after commit: a rollback counts nothing."""
    of(session).counts.extend(counts)


def feedback(session: Session, *sources: str) -> None:
    """After commit a job delivers these sources' pending feedback rows; the sweep finds a lost one."""
    of(session).feedback.extend(sources)


def squad_position(session: Session, team_code: str, lon: float, lat: float, at: float) -> None:
    of(session).squad_positions.append((team_code, lon, lat, at))


@event.listens_for(Session, "after_soft_rollback")
def _drop(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:  # the whole transaction is gone, not a savepoint
        session.info.pop(_KEY, None)


# ---------------------------------------------------------------- presence (who has a live socket)
def online(redis, usernames: list[str]) -> set[str]:
    """The users with a live socket on some API process (refreshed by the processes' heartbeats);
    Redis away counts nobody as reachable, so the SMS goes out."""
    if not usernames or redis is None:
        return set()
    try:
        scores = redis.zmscore(online_key(), usernames)
    except Exception as exc:
        log.warning("presence_unavailable", error=str(exc))
        return set()
    now = time.time()
    return {u for u, s in zip(usernames, scores) if s is not None and s > now}
