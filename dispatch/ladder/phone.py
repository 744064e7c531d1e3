"""电话外呼 through the phone network: the desk asks its SIP line to call the person, and the
network's answer — not the operator — says how the call went.

A line is a baresip user agent (a SIP phone per desk, or a PBX trunk) driven through its
`ctrl_tcp` module: netstrings of JSON, `{"command": "dial", "params": "sip:…", "token": …}` out,
`CALL_RINGING` / `CALL_ESTABLISHED` / `CALL_CLOSED` events back, the closing event's `param`
carrying the SIP status (`486 Busy Here`). Three parts:

    lines, line_for      SIP_LINES (settings) → the line a desk dials on, and the person's SIP URI
    place_call           one call on one line, start to end (blocking I/O: the dial worker's job)
    classify             what the line heard → a CallResult, or None when no call was made (pure)

and the dial's rows: `request_dial` (the API: committed, then an rq job after commit through the
outbox), `start_dial` / `finish_dial` (the worker), `stale_dials` / `give_up` (the sweep). The
call itself is recorded by `dispatch.flows.record_dial` through the same flow as an operator's."""
from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from dispatch import outbox
from dispatch.enums import CallChannel, CallResult, DialState
from dispatch.identity import mask_phone
from dispatch.ladder import calls
from dispatch.ladder.service import lock_lead
from dispatch.models import CallAttempt, Dial, Lead
from dispatch.states import ACTION_STATUSES, handed_out, require
from dispatch.timeline import record
from service.core import clock
from service.core.auth import Principal
from service.core.errors import Conflict, NotFound, ValidationFailed
from service.core.logging import log

OPEN = (DialState.queued.value, DialState.dialling.value)
DIALLABLE = re.compile(r"^\+?[0-9]{3,20}$")

# SIP final answers (RFC 3261 §21) → the desk's call results. Anything else (401/407: the line's
# credentials, 403, 5xx of the trunk, a transport error) is the line's failure: no call was made.
SIP_RESULTS: dict[int, CallResult] = {
    486: CallResult.busy,  # Busy Here (also what a phone sends when its owner presses reject)
    600: CallResult.busy,  # Busy Everywhere
    603: CallResult.rejected,  # Decline
    408: CallResult.no_answer,  # Request Timeout
    480: CallResult.no_answer,  # Temporarily Unavailable
    487: CallResult.no_answer,  # Request Terminated (we hung up after the ring timeout)
    503: CallResult.powered_off,  # carriers answer an unreachable / switched-off phone this way
    404: CallResult.invalid_number,  # Not Found
    410: CallResult.invalid_number,  # Gone
    484: CallResult.invalid_number,  # Address Incomplete
    604: CallResult.invalid_number,  # Does Not Exist Anywhere
}
# Some trunks say it in words only (a reason phrase or a Q.850 cause text).
REASON_WORDS: tuple[tuple[str, CallResult], ...] = (
    ("powered off", CallResult.powered_off), ("powered_off", CallResult.powered_off),
    ("unreachable", CallResult.powered_off), ("subscriber absent", CallResult.powered_off),
    ("user busy", CallResult.busy), ("call rejected", CallResult.rejected),
    ("unallocated", CallResult.invalid_number), ("no answer", CallResult.no_answer),
)
_STATUS = re.compile(r"^\s*(\d{3})\b\s*(.*)$")


# ---------------------------------------------------------------- lines (settings)
@dataclass(frozen=True, slots=True)
class Line:
    name: str
    host: str
    port: int
    template: str  # "sip:{number}@pbx:5060"

    def uri(self, number: str) -> str:
        return self.template.replace("{number}", number)


def lines(sip_lines: dict[str, dict[str, str]]) -> dict[str, Line]:
    """SIP_LINES → lines; a malformed entry is named (a configuration error, raised at first use)."""
    out = {}
    for name, spec in sip_lines.items():
        ctrl, template = str(spec.get("ctrl", "")), str(spec.get("dial", ""))
        host, _, port = ctrl.rpartition(":")
        if not host or not port.isdigit() or "{number}" not in template or not template.startswith("sip"):
            raise ValueError(f"SIP_LINES[{name!r}] needs ctrl \"host:port\" and dial \"sip:{{number}}@host\"")
        out[name] = Line(name, host.strip("[]"), int(port), template)
    return out


def line_for(sip_lines: dict[str, dict[str, str]], requested: str | None, who: Principal) -> Line:
    """The line a desk dials on: the one asked for, else the operator's own (named after them), else `default`."""
    configured = lines(sip_lines)
    if not configured:
        raise Conflict("no SIP line is configured (SIP_LINES): record the call by hand")
    if requested is not None:
        if requested not in configured:
            raise ValidationFailed([{"field": "line", "message": f"no SIP line named {requested!r} "
                                                                 f"(configured: {', '.join(sorted(configured))})"}])
        return configured[requested]
    line = configured.get(who.name) or configured.get("default")
    if line is None:
        raise ValidationFailed([{"field": "line", "message": "no line named after you and no `default` line: "
                                                             "name one"}])
    return line


def diallable(phone: str | None) -> str | None:
    digits = re.sub(r"[\s-]", "", phone or "")
    return digits if DIALLABLE.match(digits) else None


# ---------------------------------------------------------------- what the line heard (pure)
@dataclass(frozen=True, slots=True)
class Heard:
    """One call as the line saw it. `status`/`reason`: the final SIP answer (CALL_CLOSED's param);
    `rang`: the network answered at all (a provisional response); `answered`: CALL_ESTABLISHED;
    `ring_timeout`: we hung up unanswered; `error`: the line itself failed (ctrl_tcp unreachable,
    the dial refused, the line lost mid-call)."""
    status: int | None = None
    reason: str = ""
    rang: bool = False
    answered: bool = False
    duration_s: int | None = None
    ring_timeout: bool = False
    error: str | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None


def parse_status(param: str | None) -> tuple[int | None, str]:
    """`486 Rejected` → (486, "Rejected"); baresip's own texts (`Connection timed out`) → (None, text)."""
    m = _STATUS.match(param or "")
    return (int(m.group(1)), m.group(2).strip()) if m else (None, (param or "").strip())


def classify(h: Heard) -> CallResult | None:
    """The desk's result of a call, or None when the line did not carry it (nobody was called)."""
    if h.answered:
        return CallResult.connected
    if h.status in SIP_RESULTS:
        return SIP_RESULTS[h.status]
    reason = h.reason.lower()
    for words, result in REASON_WORDS:
        if words in reason:
            return result
    if h.ring_timeout and h.rang:
        return CallResult.no_answer
    return None


# ---------------------------------------------------------------- baresip's ctrl_tcp (blocking I/O)
class LineError(Exception):
    pass


class Ctrl:
    """A ctrl_tcp connection: netstring-framed JSON both ways."""

    def __init__(self, host: str, port: int, connect_timeout: float):
        try:
            self.sock = socket.create_connection((host, port), timeout=connect_timeout)
        except OSError as exc:
            raise LineError(f"ctrl_tcp {host}:{port} unreachable: {exc}") from exc
        self.buf = b""

    def send(self, command: str, params: str | None = None, token: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": token}).encode()
        try:
            self.sock.sendall(str(len(body)).encode() + b":" + body + b",")
        except OSError as exc:
            raise LineError(f"ctrl_tcp send failed: {exc}") from exc

    def receive(self, timeout: float) -> dict | None:
        """The next message, or None when nothing came within `timeout` seconds."""
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            msg = self._frame()
            if msg is not None:
                return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError as exc:
                raise LineError(f"ctrl_tcp lost: {exc}") from exc
            if not chunk:
                raise LineError("ctrl_tcp closed by baresip")
            self.buf += chunk

    def _frame(self) -> dict | None:
        head, sep, rest = self.buf.partition(b":")
        if not sep:
            return None
        if not head.isdigit():
            raise LineError("ctrl_tcp sent something that is not a netstring")
        n = int(head)
        if len(rest) < n + 1:
            return None
        body, self.buf = rest[:n], rest[n + 1:]
        return json.loads(body)

    def close(self) -> None:
        self.sock.close()


def place_call(line: Line, uri: str, token: str, ring_timeout: float, limit: float, connect_timeout: float) -> Heard:
    """Dial `uri` on `line` and follow the call to its end: unanswered after `ring_timeout` seconds
    we hang up (no_answer); a conversation is ended after `limit` seconds. Blocks for the whole call."""
    try:
        ctrl = Ctrl(line.host, line.port, connect_timeout)
    except LineError as exc:
        return Heard(error=str(exc))
    try:
        return _follow(ctrl, uri, token, ring_timeout, limit)
    finally:
        ctrl.close()


def _follow(ctrl: Ctrl, uri: str, token: str, ring_timeout: float, limit: float) -> Heard:
    started = time.monotonic()
    rang = answered = hung_up = False
    answered_mono = answered_at = None
    call_id = None
    try:
        ctrl.send("dial", uri, token)
        while True:
            now = time.monotonic()
            wait = (answered_mono + limit if answered else started + ring_timeout) - now
            if wait <= 0 and not hung_up:  # ring timeout, or the call limit: we end it
                ctrl.send("hangup", None, f"{token}-hangup")
                hung_up, wait = True, 10.0
            msg = ctrl.receive(max(wait, 0.0) if not hung_up else 10.0)
            if msg is None:
                if hung_up:  # baresip never said CALL_CLOSED after our hangup
                    raise LineError("no CALL_CLOSED after hangup")
                continue
            if msg.get("response"):
                if msg.get("token") == token and not msg.get("ok", False):
                    return Heard(error=f"dial refused by baresip: {msg.get('data') or ''}".strip())
                continue
            if not msg.get("event") or msg.get("class") != "call" or msg.get("direction") != "outgoing":
                continue
            if call_id is None and msg.get("id"):
                call_id = msg["id"]  # a line carries one call at a time: the first outgoing call is ours
            elif msg.get("id") and msg["id"] != call_id:
                continue
            kind = msg.get("type")
            if kind in ("CALL_RINGING", "CALL_PROGRESS"):
                rang = True
            elif kind == "CALL_ESTABLISHED" and not answered:
                rang = answered = True
                answered_mono, answered_at = time.monotonic(), clock.now()
            elif kind == "CALL_CLOSED":
                status, reason = parse_status(msg.get("param"))
                ended = time.monotonic()
                return Heard(status=status, reason=reason, rang=rang or status is not None, answered=answered,
                             duration_s=int(ended - answered_mono + 0.5) if answered else None,
                             ring_timeout=hung_up and not answered, answered_at=answered_at, ended_at=clock.now())
    except LineError as exc:
        if answered:  # the conversation happened; its end was not seen
            return Heard(rang=True, answered=True, duration_s=int(time.monotonic() - answered_mono + 0.5),
                         reason=f"line lost: {exc}", answered_at=answered_at, ended_at=clock.now())
        return Heard(rang=rang, error=str(exc))


# ---------------------------------------------------------------- the dial's rows
def request_dial(session: Session, lead_id: int, line: Line, who: Principal) -> Dial:
    """拨号 from the desk: committed with the request, sent to the line's worker after the commit.
    One open dial per lead and per line (409 otherwise)."""
    lead = lock_lead(session, lead_id)
    require(lead, "call")
    if diallable(lead.phone) is None:
        raise Conflict(f"lead {lead_id} has no number that can be dialled")
    busy = session.execute(select(Dial.id, Dial.lead_id).where(Dial.state.in_(OPEN),
                                                                 or_(Dial.line == line.name, Dial.lead_id == lead_id))
                           ).first()
    if busy is not None:
        raise Conflict(f"lead {lead_id} is being dialled (dial {busy.id})" if busy.lead_id == lead_id
                       else f"line {line.name!r} is on another call (dial {busy.id})")
    dial = Dial(lead_id=lead_id, line=line.name, actor=who.name, actor_role=who.role)
    try:
        with session.begin_nested():  # two desks on one line at the same instant: the index decides
            session.add(dial)
            session.flush()
    except IntegrityError:
        raise Conflict(f"line {line.name!r} is on another call") from None
    record(session, lead_id, who.actor, "dial", {"dial_id": dial.id, "line": line.name})
    outbox.dial(session, dial.id)
    return dial


def get_dial(session: Session, dial_id: int) -> Dial:
    dial = session.get(Dial, dial_id)
    if dial is None:
        raise NotFound(f"dial {dial_id} not found")
    return dial


def start_dial(session: Session, dial_id: int, sip_lines: dict[str, dict[str, str]]) -> tuple[Line, str] | None:
    """The worker takes a queued dial → (line, the person's SIP URI), or None when it is no longer
    queued (a second copy of the job) — a dial is placed at most once. A lead closed meanwhile, a
    line no longer configured or a number that cannot be dialled fail the dial here."""
    dial = session.execute(select(Dial).where(Dial.id == dial_id).with_for_update()).scalar()
    if dial is None or dial.state != DialState.queued:
        return None
    lead = session.get(Lead, dial.lead_id)
    number = diallable(lead.phone) if lead is not None else None
    line = lines(sip_lines).get(dial.line)
    problem = ("the line is no longer configured" if line is None else
               "no number to dial" if number is None else
               f"lead is {lead.status}" if lead.status not in ("tiered", "working") else None)
    if problem:
        _fail(session, dial, DialState.failed, problem)
        return None
    dial.state, dial.started_at = DialState.dialling.value, clock.now()
    log.info("dial_started", dial_id=dial.id, line=line.name, to=mask_phone(number))
    return line, line.uri(number)


def finish_dial(session: Session, dial_id: int, heard: Heard) -> tuple[Dial | None, CallResult | None]:
    """What the line heard, on the dial → (the dial, the call's result) — (None, None) when the
    sweep already gave the dial up; (dial, None) when no call was made (the dial failed)."""
    dial = session.execute(select(Dial).where(Dial.id == dial_id).with_for_update()).scalar()
    if dial is None or dial.state != DialState.dialling:
        return None, None
    result = classify(heard)
    dial.answered_at, dial.ended_at = heard.answered_at, heard.ended_at or clock.now()
    dial.sip_status, dial.sip_reason = heard.status, (heard.reason or None)
    if result is None:
        _fail(session, dial, DialState.failed, heard.error or f"the line did not carry the call: "
                                                              f"{heard.status or ''} {heard.reason}".strip())
        return dial, None
    dial.result = result.value
    log.info("dial_finished", dial_id=dial.id, result=result.value, sip_status=heard.status,
             duration_s=heard.duration_s)
    return dial, result


def callable_lead(session: Session, lead_id: int) -> bool:
    """May a call still be recorded on the lead (locked)? Not once it was closed or transferred (but a
    lead handed outside the city is still the city center's to call)."""
    lead = lock_lead(session, lead_id)
    return lead.status in ACTION_STATUSES["call"] or handed_out(lead)


def close_dial(session: Session, dial: Dial, heard: Heard, attempt: CallAttempt | None) -> None:
    """The dial is done: its call recorded as `attempt` (the SIP channel, its status and seconds
    connected), or not (the lead was closed while it rang: the dial keeps the network's answer)."""
    dial.state = DialState.done.value
    if attempt is not None:
        calls.describe_call(attempt, CallChannel.sip, duration_s=heard.duration_s, sip_status=heard.status,
                            at=dial.started_at)
        dial.call_id = attempt.id
    else:
        dial.error = "the lead was closed before the call ended: no call recorded"
    _tell(session, dial)


def _fail(session: Session, dial: Dial, state: DialState, why: str) -> None:
    dial.state, dial.error = state.value, why[:500]
    dial.ended_at = dial.ended_at or clock.now()
    record(session, dial.lead_id, "worker", f"dial_{state.value}", {"dial_id": dial.id, "line": dial.line,
                                                                      "error": dial.error})
    log.warning("dial_not_recorded", dial_id=dial.id, state=state.value, error=dial.error)
    _tell(session, dial)


def _tell(session: Session, dial: Dial) -> None:
    """The operator's desk hears how its dial ended (their socket stream)."""
    outbox.push(session, dial.actor, "dial.ended", dial_public(dial))


def stale_dials(session: Session, now: datetime, resend_after: float, lost_after: float) -> tuple[list[int], list[int]]:
    """The sweep's scan → (queued dials no worker took within `resend_after` s and not yet resent:
    sent once more; dials still open `lost_after` s after they were asked for: their worker is gone)."""
    lost = list(session.execute(select(Dial.id).where(
        Dial.state.in_(OPEN), Dial.requested_at < now - timedelta(seconds=lost_after))
        .order_by(Dial.id).with_for_update(skip_locked=True)).scalars())
    resend = list(session.execute(select(Dial.id).where(
        Dial.state == DialState.queued, Dial.sends < 2, Dial.requested_at < now - timedelta(seconds=resend_after),
        Dial.id.not_in(lost) if lost else True).order_by(Dial.id).with_for_update(skip_locked=True)).scalars())
    for dial in session.execute(select(Dial).where(Dial.id.in_(resend))).scalars():
        dial.sends += 1
        outbox.dial(session, dial.id)
    return resend, lost


def give_up(session: Session, dial_ids: list[int]) -> int:
    """Dials whose worker vanished: never queued → failed (no call was made); mid-call → unknown
    (a call may have been made; its result was never heard). No call result is invented."""
    for dial in session.execute(select(Dial).where(Dial.id.in_(dial_ids), Dial.state.in_(OPEN))).scalars():
        if dial.state == DialState.queued:
            _fail(session, dial, DialState.failed, "no dial worker took it (is a worker on the dial queue?)")
        else:
            _fail(session, dial, DialState.unknown, "the dial's worker stopped before the call ended")
    return len(dial_ids)


def dial_public(dial: Dial) -> dict:
    return {"id": dial.id, "lead_id": dial.lead_id, "line": dial.line, "state": dial.state, "actor": dial.actor,
            "requested_at": clock.iso(dial.requested_at) if dial.requested_at else None,
            "started_at": clock.iso(dial.started_at) if dial.started_at else None,
            "answered_at": clock.iso(dial.answered_at) if dial.answered_at else None,
            "ended_at": clock.iso(dial.ended_at) if dial.ended_at else None,
            "result": dial.result, "sip_status": dial.sip_status, "sip_reason": dial.sip_reason,
            "call_id": dial.call_id, "error": dial.error}
