"""The HTTP SMS gateway against a real local HTTP server that fails the first tries: each message
delivered exactly once; receipts authenticated as the gateway; a failed receipt escalates P3 → call."""
from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from dispatch.ladder.sms import make_gateway
from dispatch.models import SmsMessage
from service.core.auth import hash_api_key, new_api_key
from service.core.db import sync_session
from service.core.models import ApiKey
from tests.ladder.helpers import deadlines, events, lead_of, lead_row, push
from workers import tasks

pytestmark = pytest.mark.usefixtures("district", "clean")


class FakeGateway(ThreadingHTTPServer):
    """A gateway as SMS APIs behave: dedup on Idempotency-Key. It fails the first `fail_first`
    tries of each key (503), and on the try after that sends but loses its answer (500) — so
    only the idempotency key keeps the retry from sending twice."""

    def __init__(self, fail_first: int = 2, always_fail: set[str] | None = None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fail_first, self.always_fail = fail_first, always_fail or set()
        self.tries: Counter[str] = Counter()
        self.sent: dict[str, dict] = {}  # key → the message handed to the phone network
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/send"


class _Handler(BaseHTTPRequestHandler):
    server: FakeGateway

    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers["Idempotency-Key"]
        assert key == body["idempotency_key"]
        g = self.server
        with g.lock:
            g.tries[key] += 1
            n = g.tries[key]
            if key in g.always_fail or n <= g.fail_first:
                return self._answer(503, {"error": "busy"})
            first = key not in g.sent
            if first:
                g.sent[key] = body
            if first and n == g.fail_first + 1:
                return self._answer(500, {"error": "lost answer"})  # sent, but the client never hears
        self._answer(200, {"message_id": f"gw-{key}"})

    def _answer(self, status: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def gateway(settings, monkeypatch):
    servers = []

    def start(**kw) -> FakeGateway:
        server = FakeGateway(**kw)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        monkeypatch.setattr(settings, "sms_gateway_url", server.url)
        monkeypatch.setattr(settings, "sms_retry_intervals", [0, 0, 0, 0])  # rq retries at once: no waiting
        tasks.ctx.__dict__["gateway"] = make_gateway(settings)  # the worker's gateway, built once per process
        return server

    yield start
    for s in servers:
        s.shutdown()
        s.server_close()
    tasks.ctx.__dict__.pop("gateway", None)  # built again from the restored settings when next used


@pytest.fixture(scope="module")
def gateway_key(sync_engine) -> dict:
    key = new_api_key()
    with sync_session(sync_engine) as session:
        session.add(ApiKey(name="sms-gateway", key_hash=hash_api_key(key), prefix=key[:8]))
        session.commit()
    return {"X-API-Key": key}


def sms_rows(sync_engine) -> list:
    with sync_engine.connect() as conn:
        return list(conn.execute(select(SmsMessage).order_by(SmsMessage.id)))


async def test_each_message_delivered_exactly_once_through_failing_tries(client, source_headers, sync_engine,
                                                                         run_worker, gateway):
    server = gateway(fail_first=2)
    ids = [await push(client, source_headers, lead_of("P3", subject={"id_number": None})) for _ in range(3)]
    ids.append(await push(client, source_headers, lead_of("P2", subject={"id_number": None})))
    await run_worker()  # tiers them, then sends: 503, 503, sent-but-500, then the retry finds it sent
    rows = sms_rows(sync_engine)
    assert [r.lead_id for r in rows] == ids and {r.status for r in rows} == {"sent"}
    assert all(r.attempts == 4 and r.gateway_message_id == f"gw-{r.idempotency_key}" for r in rows)
    assert server.tries == {r.idempotency_key: 4 for r in rows}
    assert sorted(server.sent) == sorted(r.idempotency_key for r in rows)  # once each at the phone network
    assert all(server.sent[r.idempotency_key]["to"] == r.to_phone and "【反诈中心】" in r.body for r in rows)
    for lead_id in ids[:3]:
        assert deadlines(sync_engine, lead_id)["sms"].state == "met"
    # sending again (a duplicate job, the sweep) changes nothing
    assert tasks.send_sms([rows[0].id]) == {"skipped": 1} and tasks.sweep_sms(older_than_seconds=0) == 0
    assert len(server.sent) == 4


async def test_receipts_and_a_failed_receipt_escalates_p3_to_a_call(client, source_headers, sync_engine,
                                                                    run_worker, gateway, gateway_key, make_user):
    server = gateway(fail_first=0)
    a = await push(client, source_headers, lead_of("P3", subject={"id_number": None}))
    b = await push(client, source_headers, lead_of("P3", subject={"id_number": None}))
    await run_worker()
    msg = {r.lead_id: r.gateway_message_id for r in sms_rows(sync_engine)}
    assert len(server.sent) == 2
    r = await client.post("/api/v1/sms/receipts", headers=gateway_key, json={"message_id": msg[a], "status": "delivered"})
    assert r.status_code == 200 and r.json() == {"message_id": msg[a], "status": "delivered", "changed": True,
                                                 "escalated": False}
    r = await client.post("/api/v1/sms/receipts", headers=gateway_key, json={"message_id": msg[b], "status": "failed"})
    assert r.status_code == 200 and r.json()["escalated"] is True
    again = await client.post("/api/v1/sms/receipts", headers=gateway_key, json={"message_id": msg[b],
                                                                                   "status": "failed"})
    assert again.status_code == 200 and again.json()["changed"] is False and again.json()["escalated"] is False
    statuses = {r.lead_id: r.status for r in sms_rows(sync_engine)}
    assert statuses == {a: "delivered", b: "failed"}
    assert (lead_row(sync_engine, a).needs_call, lead_row(sync_engine, b).needs_call) == (False, True)
    assert [e.data["rule"] for e in events(sync_engine, b, "escalated")] == ["sms_failed"]
    assert deadlines(sync_engine, b)["first_call"].state == "pending"
    queue = (await client.get("/api/v1/calls/queue", headers=make_user("operator"))).json()["items"]
    assert [x["id"] for x in queue] == [b]
    # only the gateway's key; persons and other sources are refused; unknown ids are 404; bad bodies 422
    for headers, status in ((source_headers, 403), (make_user("admin"), 403), ({}, 401)):
        r = await client.post("/api/v1/sms/receipts", headers=headers, json={"message_id": msg[a],
                                                                             "status": "failed"})
        assert r.status_code == status and set(r.json()) == {"error", "detail"}
    r = await client.post("/api/v1/sms/receipts", headers=gateway_key, json={"message_id": "nope", "status": "failed"})
    assert r.status_code == 404
    for body in ({"message_id": msg[a]}, {"message_id": msg[a], "status": "read"}, {"message_id": "a\x00",
                                                                                   "status": "failed"}, []):
        r = await client.post("/api/v1/sms/receipts", headers=gateway_key, json=body)
        assert r.status_code == 422 and r.json()["error"] == "validation_error", body
    assert statuses == {r.lead_id: r.status for r in sms_rows(sync_engine)}


async def test_a_message_the_gateway_never_takes_fails_and_escalates(client, source_headers, sync_engine,
                                                                     run_worker, gateway):
    lead_id = await push(client, source_headers, lead_of("P3", subject={"id_number": None}))
    server = gateway(always_fail={f"lead-{lead_id}-warning"})
    await run_worker()
    (row,) = sms_rows(sync_engine)
    assert (row.status, row.attempts) == ("failed", 5) and server.tries[row.idempotency_key] == 5
    assert server.sent == {}
    assert lead_row(sync_engine, lead_id).needs_call is True
    assert [e.data["why"] for e in events(sync_engine, lead_id, "sms_failed")] == ["sms_send_failed"]
