"""Calls whose results come from the phone network: two real baresip user agents on loopback, the
desk's line ("operator") dialling the person's phone ("person") through `POST /leads/{id}/dial`,
the dial worker (a real rq worker on the dial queue) following the call over ctrl_tcp, and the
result recorded through the same flow as an operator's call."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select, text

from dispatch.enums import CallResult
from dispatch.ladder.phone import Heard, classify, parse_status
from dispatch.models import CallAttempt, Dial
from tests.ladder.helpers import events, lead_row, tiered

pytestmark = pytest.mark.usefixtures("district", "clean")

PERSON = "13812345678"  # the person agent's SIP user: a lead with this phone reaches it
MODULES = "/usr/lib/baresip/modules"


# ---------------------------------------------------------------- SIP statuses → results (pure)
@pytest.mark.parametrize("heard, expected", [
    (Heard(status=486, reason="Busy Here", rang=True), CallResult.busy),
    (Heard(status=486, reason="Rejected", rang=True), CallResult.busy),
    (Heard(status=600, reason="Busy Everywhere"), CallResult.busy),
    (Heard(status=603, reason="Decline"), CallResult.rejected),
    (Heard(status=480, reason="Temporarily Unavailable"), CallResult.no_answer),
    (Heard(status=408, reason="Request Timeout"), CallResult.no_answer),
    (Heard(status=487, reason="Request Terminated", rang=True, ring_timeout=True), CallResult.no_answer),
    (Heard(reason="Connection reset by user", rang=True, ring_timeout=True), CallResult.no_answer),
    (Heard(status=503, reason="Service Unavailable"), CallResult.powered_off),
    (Heard(status=480, reason="Subscriber powered off"), CallResult.no_answer),  # the status decides first
    (Heard(reason="powered_off"), CallResult.powered_off),
    (Heard(status=404, reason="Not Found"), CallResult.invalid_number),
    (Heard(status=484, reason="Address Incomplete"), CallResult.invalid_number),
    (Heard(answered=True, rang=True, duration_s=3, reason="Connection reset by peer"), CallResult.connected),
    # the line's failures: nobody was called
    (Heard(reason="Connection timed out"), None),
    (Heard(reason="Connection reset by user", ring_timeout=True), None),  # not even a provisional answer
    (Heard(status=407, reason="Proxy Authentication Required"), None),
    (Heard(status=502, reason="Bad Gateway"), None),
    (Heard(error="ctrl_tcp 127.0.0.1:1 unreachable"), None),
])
def test_sip_answers_become_call_results(heard, expected):
    assert classify(heard) == expected


def test_closing_param_is_parsed():
    assert parse_status("486 Rejected") == (486, "Rejected")
    assert parse_status("Connection reset by peer") == (None, "Connection reset by peer")
    assert parse_status(None) == (None, "")


# ---------------------------------------------------------------- two baresip agents on loopback
def _free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _sip_ports(count: int) -> list[int]:
    """SIP ports spaced by 10, each with its next two ports free (baresip opens TCP/TLS on them)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        start = 20000 + s.getsockname()[1] % 20000
    ports, p = [], start
    while len(ports) < count:
        if all(_free(p + i) for i in range(3)):
            ports.append(p)
            p += 10
        else:
            p += 1
    return ports


def _free_tcp() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Agent:
    """One baresip user agent in its own config folder, driven over ctrl_tcp."""

    def __init__(self, folder: Path, user: str, sip: int, ctrl: int):
        self.folder, self.user, self.sip, self.ctrl = folder, user, sip, ctrl
        folder.mkdir(parents=True)
        # G.711 is 8 kHz; ausine makes only 48 kHz stereo, so the source is resampled (ausrc_srate,
        # ausrc_channels) — without it `accept` answers nothing. aufile plays nothing in baresip 1.0:
        # aubridge is the player.
        (folder / "config").write_text(
            f"poll_method epoll\nsip_listen 127.0.0.1:{sip}\nmodule_path {MODULES}\n"
            "module g711.so\nmodule ausine.so\nmodule aubridge.so\n"
            "module_app account.so\nmodule_app menu.so\nmodule_app ctrl_tcp.so\n"
            f"ctrl_tcp_listen 127.0.0.1:{ctrl}\n"
            "audio_source ausine,440\naudio_player aubridge,nil\n"
            "ausrc_srate 48000\nausrc_channels 2\nauplay_srate 48000\n")
        (folder / "accounts").write_text(f"<sip:{user}@127.0.0.1:{sip}>;regint=0\n")
        self.log = (folder / "baresip.log").open("wb")
        self.proc = subprocess.Popen(["baresip", "-f", str(folder)], stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, seconds: float = 15) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"baresip exited: {(self.folder / 'baresip.log').read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.ctrl), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("baresip's ctrl_tcp never opened")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()


class Person:
    """The person's phone: on an incoming call it does what `mode` says — `reject` (hangup while
    ringing: baresip answers 486) or `answer` (accept, then hang up after `talk` seconds)."""

    def __init__(self, agent: Agent):
        self.sock = socket.create_connection(("127.0.0.1", agent.ctrl), timeout=5)
        self.mode, self.talk, self.seen = "reject", 1.5, []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _send(self, command: str) -> None:
        body = json.dumps({"command": command, "token": command}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def _run(self) -> None:
        buf = b""
        self.sock.settimeout(0.5)
        while not self.stopping.is_set():
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            buf += chunk
            while b":" in buf:
                head, rest = buf.split(b":", 1)
                n = int(head)
                if len(rest) < n + 1:
                    break
                msg, buf = json.loads(rest[:n]), rest[n + 1:]
                kind = msg.get("type")
                if msg.get("event"):
                    self.seen.append(kind)
                if kind == "CALL_INCOMING":
                    self._send("hangup" if self.mode == "reject" else "accept")
                elif kind == "CALL_ESTABLISHED":
                    threading.Timer(self.talk, self._send, args=("hangup",)).start()

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()


@pytest.fixture(scope="module")
def phones(tmp_path_factory):
    """(the desk's line, the person's phone): started once for the module, always killed."""
    if shutil.which("baresip") is None:
        pytest.fail("baresip is missing: apt-get install -y baresip-core")
    root = tmp_path_factory.mktemp("sip")
    desk_sip, person_sip = _sip_ports(2)
    agents = []
    try:
        agents.append(Agent(root / "desk", "desk", desk_sip, _free_tcp()))
        agents.append(Agent(root / "person", PERSON, person_sip, _free_tcp()))
        for a in agents:
            a.wait_ready()
        person = Person(agents[1])
        try:
            yield agents[0], agents[1], person
        finally:
            person.stop()
    finally:
        for a in agents:
            a.stop()


@pytest.fixture
def line(phones, settings, monkeypatch):
    desk, person_agent, person = phones
    monkeypatch.setattr(settings, "sip_lines", {"default": {"ctrl": f"127.0.0.1:{desk.ctrl}",
                                                            "dial": f"sip:{{number}}@127.0.0.1:{person_agent.sip}"}})
    monkeypatch.setattr(settings, "sip_ring_timeout_seconds", 15.0)
    person.seen.clear()
    return person


@pytest.fixture(scope="module")
def operator(make_user):
    return make_user("operator")


def run_dial_worker(redis_url: str) -> None:
    """Drain the dial queue with the workers' own rq class (burst: it returns when the call is done)."""
    from workers.queues import dial_queue
    from workers.run import Worker

    redis = Redis.from_url(redis_url)
    Worker([dial_queue(redis)], connection=redis).work(burst=True, with_scheduler=False)


async def dial(client, headers, lead_id, **body) -> dict:
    r = await client.post(f"/api/v1/leads/{lead_id}/dial", headers=headers, json=body or None)
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "queued"
    return r.json()


def calls_of(sync_engine, lead_id):
    with sync_engine.connect() as conn:
        return conn.execute(select(CallAttempt).where(CallAttempt.lead_id == lead_id).order_by(CallAttempt.id)).all()


async def test_rejected_on_an_urgent_lead_is_a_busy_line(client, source_headers, operator, line, sync_engine,
                                                         run_worker, redis_url):
    line.mode = "reject"
    lead_id = await tiered(client, source_headers, run_worker, "P0", subject={"phone": PERSON})
    asked = await dial(client, operator, lead_id)
    run_dial_worker(redis_url)

    got = (await client.get(f"/api/v1/dials/{asked['id']}", headers=operator)).json()
    assert (got["state"], got["result"], got["sip_status"]) == ("done", "busy", 486), got
    assert "CALL_INCOMING" in line.seen
    (call,) = calls_of(sync_engine, lead_id)
    assert (call.result, call.channel, call.sip_status, call.duration_s, call.id) == ("busy", "sip", 486, None,
                                                                                      got["call_id"])
    assert call.actor == operator["X-Username"]
    logged = events(sync_engine, lead_id, "call")
    assert len(logged) == 1 and logged[0].actor == f"user:{operator['X-Username']}"
    # the lead engineer's busy-line rule: an urgent lead whose line is busy gets a squad at once and
    # its family is told (the scammer may be on the line)
    assert "busy_line" in logged[0].data["rules"]
    assert [e.data["rule"] for e in events(sync_engine, lead_id, "escalated")] == ["busy_line"]
    assert [e.data["rule"] for e in events(sync_engine, lead_id, "family_notified")] == ["busy_line"]
    assert lead_row(sync_engine, lead_id).needs_call  # and the desk keeps calling


async def test_answered_is_connected_with_its_duration_and_one_call_gets_the_outcome(
        client, source_headers, operator, line, sync_engine, run_worker, redis_url):
    line.mode, line.talk = "answer", 1.5
    lead_id = await tiered(client, source_headers, run_worker, "P2", subject={"phone": PERSON})
    asked = await dial(client, operator, lead_id, line="default")
    run_dial_worker(redis_url)

    got = (await client.get(f"/api/v1/dials/{asked['id']}", headers=operator)).json()
    assert (got["state"], got["result"]) == ("done", "connected"), got
    assert got["answered_at"] is not None and "CALL_ESTABLISHED" in line.seen
    (call,) = calls_of(sync_engine, lead_id)
    assert (call.result, call.channel, call.outcome) == ("connected", "sip", None)
    assert call.duration_s >= 1
    assert not lead_row(sync_engine, lead_id).needs_call

    # what the person said, on the same call: the ladder closes the lead, and still one call
    r = await client.post(f"/api/v1/calls/{call.id}/outcome", headers=operator, json={"outcome": "dissuaded"})
    assert r.status_code == 200, r.text
    assert r.json()["rules"] == ["dissuaded_by_phone"] and r.json()["lead"]["status"] == "closed"
    (call,) = calls_of(sync_engine, lead_id)
    assert call.outcome == "dissuaded"
    again = await client.post(f"/api/v1/calls/{call.id}/outcome", headers=operator, json={"outcome": "refused"})
    assert again.status_code == 409


async def test_a_number_the_network_does_not_know_is_invalid(client, source_headers, operator, line, sync_engine,
                                                             run_worker, redis_url):
    lead_id = await tiered(client, source_headers, run_worker, "P2", subject={"phone": "13900000009"})
    asked = await dial(client, operator, lead_id)
    run_dial_worker(redis_url)
    got = (await client.get(f"/api/v1/dials/{asked['id']}", headers=operator)).json()
    assert (got["result"], got["sip_status"]) == ("invalid_number", 404), got
    assert [c.result for c in calls_of(sync_engine, lead_id)] == ["invalid_number"]


# ---------------------------------------------------------------- refusals and lost dials (no baresip needed)
async def test_dial_refusals(client, source_headers, operator, settings, monkeypatch, sync_engine, run_worker):
    monkeypatch.setattr(settings, "sip_lines", {"default": {"ctrl": "127.0.0.1:1", "dial": "sip:{number}@127.0.0.1:9"}})
    lead_id = await tiered(client, source_headers, run_worker, "P2")
    r = await client.post(f"/api/v1/leads/{lead_id}/dial", headers=operator, json={"line": "nope"})
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "line"
    await dial(client, operator, lead_id)
    r = await client.post(f"/api/v1/leads/{lead_id}/dial", headers=operator)
    assert r.status_code == 409, r.text  # one open dial per lead (and per line)
    r = await client.post("/api/v1/leads/999999/dial", headers=operator)
    assert r.status_code == 404
    monkeypatch.setattr(settings, "sip_lines", {})
    r = await client.post(f"/api/v1/leads/{lead_id}/dial", headers=operator)
    assert r.status_code == 409 and "SIP_LINES" in r.text


async def test_a_line_that_cannot_be_reached_records_no_call(client, source_headers, operator, settings,
                                                             monkeypatch, sync_engine, run_worker, redis_url):
    closed = _free_tcp()  # nothing listens there
    monkeypatch.setattr(settings, "sip_lines", {"default": {"ctrl": f"127.0.0.1:{closed}",
                                                            "dial": "sip:{number}@127.0.0.1:9"}})
    lead_id = await tiered(client, source_headers, run_worker, "P1")
    asked = await dial(client, operator, lead_id)
    run_dial_worker(redis_url)
    got = (await client.get(f"/api/v1/dials/{asked['id']}", headers=operator)).json()
    assert got["state"] == "failed" and "unreachable" in got["error"]
    assert calls_of(sync_engine, lead_id) == [] and lead_row(sync_engine, lead_id).needs_call
    assert len(events(sync_engine, lead_id, "dial_failed")) == 1


async def test_the_sweep_records_lost_dials_honestly(client, source_headers, operator, settings, monkeypatch,
                                                     sync_engine, run_worker, redis_url):
    from workers.queues import dial_queue
    from workers.tasks import sweep_dials

    monkeypatch.setattr(settings, "sip_lines", {"a": {"ctrl": "127.0.0.1:1", "dial": "sip:{number}@h"},
                                                "b": {"ctrl": "127.0.0.1:1", "dial": "sip:{number}@h"}})
    mid_call = await tiered(client, source_headers, run_worker, "P1")
    never_taken = await tiered(client, source_headers, run_worker, "P1")
    lost = await dial(client, operator, mid_call, line="a")
    waiting = await dial(client, operator, never_taken, line="b")
    Redis.from_url(redis_url).delete(dial_queue(Redis.from_url(redis_url)).key)  # the jobs are lost
    with sync_engine.begin() as conn:  # a worker took the first and died mid-call, long ago
        conn.execute(text("UPDATE dial SET state = 'dialling', started_at = now(), requested_at = now() - :age "
                          "WHERE id = :id"), {"age": timedelta(hours=2), "id": lost["id"]})
        conn.execute(text("UPDATE dial SET requested_at = now() - interval '1 minute' WHERE id = :id"),
                     {"id": waiting["id"]})
    assert sweep_dials() == {"resent": 1, "given_up": 1}
    assert sweep_dials() == {"resent": 0, "given_up": 0}  # resent once only
    assert dial_queue(Redis.from_url(redis_url)).count == 1
    with sync_engine.connect() as conn:
        states = dict(conn.execute(select(Dial.id, Dial.state)).all())
    assert states == {lost["id"]: "unknown", waiting["id"]: "queued"}
    assert calls_of(sync_engine, mid_call) == []  # no result is invented
    assert len(events(sync_engine, mid_call, "dial_unknown")) == 1
