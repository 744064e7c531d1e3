"""An offer's SMS fallback leaves at once, whichever path queued it — not at the periodic SMS sweep.

Each test runs a real `quanzu worker` process (it consumes the SMS jobs with the default `log`
gateway) beside a real API process (uvicorn), and reads `sms_message` rows (purpose `offer`): each
must be `sent` within 1 s of its creation. SMS_RESEND_AFTER_SECONDS is 600 in the worker, so the
sweep that resends pending rows cannot be what sends them. Also here: a lead the center closes takes
its open offer with it.

Black box: HTTP, the squads' WebSocket, the worker CLI, reads of rows (dispatch.models)."""
from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timezone

import httpx
import pytest
from sqlalchemy import select

from dispatch.models import Assignment, Lead, SmsMessage, Visit
from tests import waiting
from tests.factories import make_lead
from tests.mobile_api.conftest import open_socket
from tests.procs import ROOT, WorkerProcess

LIMIT_S = 1.0  # an offer SMS must be sent within this of being queued
WATCH_S = 3.0  # how long a pending one is watched before the test gives its verdict
SMS_SWEEP_OFF = {"SMS_RESEND_AFTER_SECONDS": "600"}


def p0_lead() -> dict:
    """A P0 lead in the own squad's beat: a face-to-face visit at once (the worker offers it)."""
    return make_lead(warning_type="fund_transfer", risk_level=1, amount_cny=5000)


def p3_lead() -> dict:
    """A P3 lead of a nonlocal person: SMS only, no visit of the policy's own."""
    return make_lead(risk_level=3, fraud_type="online_shopping", subject={"residency": "nonlocal"})


@pytest.fixture
def worker(tmp_path):
    """worker(**env) → a real `quanzu worker` process on this run's database and Redis; killed after the test."""
    started: list[WorkerProcess] = []

    def start(**env) -> WorkerProcess:
        w = WorkerProcess(tmp_path / f"worker-{len(started)}.log", **{**SMS_SWEEP_OFF, **env}).start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()


def rows(sync_engine, model, *where):
    with sync_engine.connect() as conn:
        return list(conn.execute(select(model).where(*where).order_by(model.id)))


async def until(cond, seconds: float, what: str, worker: WorkerProcess | None = None):
    """Poll `cond` (sync, run in a thread) until it gives something truthy; → that. Fails saying `what`,
    at once when the worker process died."""
    async def check():
        got = await asyncio.to_thread(cond)
        if not got and worker is not None:
            assert worker.alive, f"the worker process died:\n{worker.tail()}"
        return got

    return await waiting.until(check, seconds, lambda: what + (f"\nworker log:\n{worker.tail()}" if worker else ""))


async def push(http: httpx.AsyncClient, headers: dict, lead: dict) -> int:
    r = await http.post("/api/v1/leads", json=lead, headers=headers)
    assert r.status_code == 202, r.text
    return r.json()["id"]


async def other_team(http: httpx.AsyncClient, commander: dict, *not_these: str) -> str:
    r = await http.get("/api/v1/teams", headers=commander)
    assert r.status_code == 200, r.text
    return next(t["code"] for t in sorted(r.json()["items"], key=lambda t: t["code"]) if t["code"] not in not_these)


async def online(sock) -> None:
    """The socket's user counts as live once its first command is answered (presence is set on connect)."""
    await sock.send(type="status", status="on_duty", id="on")
    assert (await sock.recv("result"))["ok"] is True


async def offer_sms_verdict(sync_engine, assignment_id: int, path: str, expect: int = 3) -> str:
    """Waits for the offer SMS rows of the assignment, then up to WATCH_S for them to be sent; → the
    failures, one line each, or '' when every row was sent within LIMIT_S of its creation."""
    def queued():
        got = rows(sync_engine, SmsMessage, SmsMessage.assignment_id == assignment_id, SmsMessage.purpose == "offer")
        return got if len(got) >= expect else None

    await until(queued, 10, f"{path}: {expect} offer SMS rows for assignment {assignment_id}")
    end = time.monotonic() + WATCH_S
    while True:
        got = rows(sync_engine, SmsMessage, SmsMessage.assignment_id == assignment_id, SmsMessage.purpose == "offer")
        if all(m.status != "pending" for m in got) or time.monotonic() > end:
            break
        await asyncio.sleep(0.05)
    now = datetime.now(timezone.utc)
    lines = []
    for m in got:
        if m.sent_at is not None:
            delay = (m.sent_at - m.created_at).total_seconds()
            if m.status not in ("sent", "delivered") or delay >= LIMIT_S:
                lines.append(f"{m.idempotency_key}: {m.status}, sent {delay:.2f} s after it was queued")
        else:
            lines.append(f"{m.idempotency_key}: still {m.status} {(now - m.created_at).total_seconds():.1f} s "
                         f"after it was queued (attempts {m.attempts})")
    if lines:
        return (f"{path}: offer SMS not sent within {LIMIT_S} s of being queued (the SMS sweep would send a pending "
                f"one only after SMS_RESEND_AFTER_SECONDS):\n  " + "\n  ".join(lines))
    return ""


def sms_summary(sync_engine, assignment_id: int) -> str:
    got = rows(sync_engine, SmsMessage, SmsMessage.assignment_id == assignment_id, SmsMessage.purpose == "offer")
    return ", ".join(f"{m.status} after {(m.sent_at - m.created_at).total_seconds():.2f} s" if m.sent_at
                     else m.status for m in got) or "none"


def assignments_of(sync_engine, lead_id: int) -> list:
    return rows(sync_engine, Assignment, Assignment.lead_id == lead_id)


# ---------------------------------------------------------------- a. REST decline → the next squad by SMS


async def test_offer_sms_after_a_rest_decline_leaves_at_once(api_a, source_headers, make_squad, own_team, sync_engine,
                                                             commander, worker):
    w = worker()
    async with httpx.AsyncClient(base_url=api_a.http, timeout=30) as http:
        b_code = await other_team(http, commander, own_team)
        a, _b = make_squad(own_team), make_squad(b_code)
        sock = await open_socket(api_a.ws, a.headers["police"])  # squad A is online; squad B has no socket
        await online(sock)
        lead_id = await push(http, source_headers, p0_lead())
        offer = await sock.recv("offer", timeout=30)
        await sock.ack(offer["seq"])
        first = offer["data"]["assignment_id"]
        r = await http.post(f"/api/v1/assignments/{first}/decline", headers=a.headers["police"],
                            json={"reason": "在处置另一警情"})
        assert r.status_code == 200, r.text
        nxt = [x for x in assignments_of(sync_engine, lead_id) if x.id != first]
        assert [(x.team_code, x.status) for x in nxt] == [(b_code, "offered")], nxt
        verdict = await offer_sms_verdict(sync_engine, nxt[0].id, f"REST decline by {own_team} → offer to {b_code}")
        await sock.close()
    assert w.alive, w.tail()
    assert not verdict, verdict


# ---------------------------------------------------------------- b. the center's assign


async def test_offer_sms_after_a_center_assign_leaves_at_once(api_a, source_headers, make_squad, own_team, sync_engine,
                                                              commander, worker):
    w = worker()
    async with httpx.AsyncClient(base_url=api_a.http, timeout=30) as http:
        c_code = await other_team(http, commander, own_team)
        make_squad(c_code)  # on duty, nobody connected
        lead_id = await push(http, source_headers, p3_lead())
        await until(lambda: rows(sync_engine, Lead, Lead.id == lead_id, Lead.status == "tiered"), 30,
                    f"lead {lead_id} tiered", w)
        r = await http.post(f"/api/v1/leads/{lead_id}/assign", headers=commander, json={"team_code": c_code})
        assert r.status_code == 200, r.text
        assert (r.json()["team_code"], r.json()["status"]) == (c_code, "offered"), r.text
        verdict = await offer_sms_verdict(sync_engine, r.json()["id"], f"center assign → offer to {c_code}")
    assert w.alive, w.tail()
    assert not verdict, verdict


# ---------------------------------------------------------------- c. an offer expires → the next squad by SMS


async def test_offer_sms_after_an_expired_offer_leaves_at_once(api_a, source_headers, make_squad, own_team, sync_engine,
                                                               commander, worker, tmp_path):
    policy = (ROOT / "dispatch" / "policy.toml").read_text(encoding="utf-8")
    short, n = re.subn(r"(?m)^offer_timeout_seconds\s*=\s*\d+", "offer_timeout_seconds = 2", policy)
    assert n == 1, "offer_timeout_seconds not found in dispatch/policy.toml"
    (tmp_path / "policy.toml").write_text(short, encoding="utf-8")
    w = worker(POLICY_FILE=str(tmp_path / "policy.toml"), FIELD_SWEEP_EVERY_SECONDS="1")
    async with httpx.AsyncClient(base_url=api_a.http, timeout=30) as http:
        b_code = await other_team(http, commander, own_team)
        make_squad(own_team)
        make_squad(b_code)  # both on duty, nobody connected
        lead_id = await push(http, source_headers, p0_lead())
        first = (await until(lambda: assignments_of(sync_engine, lead_id), 30, f"an offer for lead {lead_id}", w))[0]
        assert first.team_code == own_team, first

        def second():
            got = [x for x in assignments_of(sync_engine, lead_id) if x.id != first.id]
            return got or None

        nxt = (await until(second, 15, f"the offer to {own_team} expired (2 s) and went to the next squad", w))[0]
        assert nxt.team_code == b_code and nxt.attempt == 2, nxt
        verdict = await offer_sms_verdict(sync_engine, nxt.id, f"offer to {own_team} expired → offer to {b_code}")
        reference = sms_summary(sync_engine, first.id)  # the worker's own dispatch, for comparison
    assert w.alive, w.tail()
    assert not verdict, f"{verdict}\n(the first offer's SMS, queued by the worker's dispatch: {reference})"


# ---------------------------------------------------------------- d. pushed to a live socket, never acked


async def test_offer_sms_after_no_ack_leaves_at_once(api_a, source_headers, make_squad, own_team, sync_engine, worker):
    w = worker(OFFER_ACK_SECONDS="1", FIELD_SWEEP_EVERY_SECONDS="1")
    async with httpx.AsyncClient(base_url=api_a.http, timeout=30) as http:
        a = make_squad(own_team)
        sock = await open_socket(api_a.ws, a.headers["police"])
        await online(sock)
        lead_id = await push(http, source_headers, p0_lead())
        offer = await sock.recv("offer", timeout=30)  # received, never acked
        assert offer["data"]["lead"]["id"] == lead_id, offer
        aid = offer["data"]["assignment_id"]
        early = rows(sync_engine, SmsMessage, SmsMessage.assignment_id == aid)
        assert early == [], f"a member was online, yet the offer went by SMS at once: {early}"
        verdict = await offer_sms_verdict(sync_engine, aid, f"offer to {own_team} pushed, not acked in 1 s")
        await sock.close()
    assert w.alive, w.tail()
    assert not verdict, verdict


# ---------------------------------------------------------------- a closed lead's offer


async def test_a_closed_leads_offer_cannot_be_accepted(api_a, source_headers, make_squad, own_team, sync_engine,
                                                       commander, worker):
    """The center closes a lead while its visit is offered to a squad: the offer is withdrawn (row
    `withdrawn`, `offer.withdrawn` on the squad's socket) and accepting it is a 409; nor can the squad
    arrive or complete on it."""
    w = worker()
    async with httpx.AsyncClient(base_url=api_a.http, timeout=30) as http:
        a = make_squad(own_team)
        sock = await open_socket(api_a.ws, a.headers["police"])
        await online(sock)
        lead_id = await push(http, source_headers, p0_lead())
        offer = await sock.recv("offer", timeout=30)
        await sock.ack(offer["seq"])
        aid = offer["data"]["assignment_id"]

        r = await http.post(f"/api/v1/leads/{lead_id}/close", headers=commander, json={"outcome": "dissuaded"})
        assert r.status_code == 200, r.text
        police = a.headers["police"]
        accept = await http.post(f"/api/v1/assignments/{aid}/accept", headers=police)
        arrive = await http.post(f"/api/v1/assignments/{aid}/arrive", headers=police)
        complete = await http.post(f"/api/v1/assignments/{aid}/complete", headers=police,
                                   json={"outcome": "refused", "met_in_person": True})
        try:
            withdrawn = (await sock.recv("offer.withdrawn", timeout=5))["data"]
        except TimeoutError:
            withdrawn = None
        await sock.close()

        def settled():
            (x,) = rows(sync_engine, Assignment, Assignment.id == aid)
            return x if x.status != "offered" else None

        try:
            row = await until(settled, 5, "the offer row left `offered`")
        except AssertionError:
            (row,) = rows(sync_engine, Assignment, Assignment.id == aid)
        (lead,) = rows(sync_engine, Lead, Lead.id == lead_id)
        visits = [(v.id, v.status) for v in rows(sync_engine, Visit, Visit.lead_id == lead_id)]

    assert w.alive, w.tail()
    said = (f"lead {lead_id} closed by the center (now {lead.status}/{lead.outcome}, visits {visits}); then on its "
            f"offer {aid}: accept → {accept.status_code}, arrive → {arrive.status_code}, complete → "
            f"{complete.status_code}; the offer row is `{row.status}`; offer.withdrawn on the squad's socket: "
            f"{withdrawn}")
    print(said)
    assert accept.status_code == 409 and accept.json()["error"] == "conflict", said
    assert arrive.status_code == 409 and complete.status_code == 409, said
    assert row.status == "withdrawn", said
    assert withdrawn is not None and withdrawn["assignment_id"] == aid, said
    assert (lead.status, lead.outcome) == ("closed", "dissuaded"), said
