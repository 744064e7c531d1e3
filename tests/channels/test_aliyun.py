"""Alibaba Cloud SMS through its official SDK against a local stand-in for dysmsapi: the stand-in
recomputes the SDK's ACS3-HMAC-SHA256 signature with the test's secret (a wrong secret is refused),
answers SendSms and QuerySendDetails in the documented shape, and the receipt sweep marks the rows."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from sqlalchemy import select

from dispatch.ladder.gateways import AliyunConfig, AliyunGateway, Outgoing
from dispatch.models import SmsMessage
from tests.ladder.helpers import events, lead_row, tiered
from workers import tasks

pytestmark = pytest.mark.usefixtures("district", "clean")

AK, SECRET = "LTAI-test-key-id", "test-secret-0123456789"
TEMPLATES = {"warning": "SMS_100000001", "flash_warning": "SMS_100000002", "offer": "SMS_100000003"}


def expected_signature(method: str, path: str, query: str, headers, body: bytes, secret: str) -> tuple[str, str]:
    """ACS3-HMAC-SHA256 as Alibaba Cloud documents it (V3 signature) → (the Authorization header, the
    signature alone)."""
    auth = headers["Authorization"]
    signed = auth.split("SignedHeaders=")[1].split(",")[0]
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    canonical_query = "&".join(f"{k}={quote(v, safe='~')}" for k, v in pairs)
    canonical_headers = "".join(f"{h}:{headers[h].strip()}\n" for h in signed.split(";"))
    payload = hashlib.sha256(body).hexdigest()
    request = f"{method}\n{path}\n{canonical_query}\n{canonical_headers}\n{signed}\n{payload}"
    to_sign = f"ACS3-HMAC-SHA256\n{hashlib.sha256(request.encode()).hexdigest()}"
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    return f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={signed},Signature={signature}", signature


class Dysms(ThreadingHTTPServer):
    """dysmsapi's two actions; `status[biz_id]` = (SendStatus, ErrCode) QuerySendDetails reports."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.sent: dict[str, dict] = {}  # BizId → SendSms's parameters
        self.status: dict[str, tuple[int, str]] = {}
        self.queries: list[dict] = []
        self.refused = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Dysms

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        url = urlsplit(self.path)
        q = dict(parse_qsl(url.query, keep_blank_values=True))
        auth = self.headers.get("Authorization", "")
        ok = False
        if auth.startswith(f"ACS3-HMAC-SHA256 Credential={AK},"):
            header, _ = expected_signature("POST", url.path or "/", url.query, self.headers, body, SECRET)
            ok = hmac.compare_digest(header, auth) and \
                self.headers["x-acs-content-sha256"] == hashlib.sha256(body).hexdigest()
        if not ok:
            self.server.refused += 1
            return self._answer(400, {"Code": "SignatureDoesNotMatch", "Message": "signature mismatch",
                                      "RequestId": "r-1"})
        action = self.headers["x-acs-action"]
        assert self.headers["x-acs-version"] == "2017-05-25"
        if action == "SendSms":
            biz = f"{uuid.uuid4().int % 10**15}^0"
            self.server.sent[biz] = q
            return self._answer(200, {"Code": "OK", "Message": "OK", "BizId": biz, "RequestId": "r-2"})
        if action == "QuerySendDetails":
            self.server.queries.append(q)
            code, err = self.server.status.get(q["BizId"], (1, ""))
            sent = self.server.sent[q["BizId"]]
            dto = {"PhoneNum": q["PhoneNumber"], "SendStatus": code, "ErrCode": err, "TemplateCode": sent["TemplateCode"],
                   "Content": "【反诈中心】…", "SendDate": "2026-12-06 10:00:00", "ReceiveDate": "2026-12-06 10:00:02",
                   "OutId": sent.get("OutId")}
            return self._answer(200, {"Code": "OK", "Message": "OK", "RequestId": "r-3", "TotalCount": 1,
                                      "SmsSendDetailDTOs": {"SmsSendDetailDTO": [dto]}})
        self._answer(404, {"Code": "InvalidAction", "Message": action})

    def _answer(self, status: int, doc: dict) -> None:
        data = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json;charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def dysms():
    server = Dysms()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()
    tasks.ctx.__dict__.pop("gateway", None)


def aliyun(server: Dysms, secret: str = SECRET) -> AliyunGateway:
    return AliyunGateway(AliyunConfig(AK, secret, "反诈中心", TEMPLATES, server.endpoint, timeout=5))


def rows(sync_engine, lead_id: int) -> list:
    with sync_engine.connect() as conn:
        return list(conn.execute(select(SmsMessage).where(SmsMessage.lead_id == lead_id).order_by(SmsMessage.id)))


async def test_send_sms_signed_and_receipts_by_query_send_details(dysms, client, source_headers, sync_engine,
                                                                   run_worker):
    tasks.ctx.__dict__["gateway"] = aliyun(dysms)
    a = await tiered(client, source_headers, run_worker, "P3", subject={"name": "陈静", "phone": "13700000001", "id_number": None})
    b = await tiered(client, source_headers, run_worker, "P3", subject={"phone": "13700000002", "id_number": None})
    [ma], [mb] = rows(sync_engine, a), rows(sync_engine, b)
    assert ma.status == mb.status == "sent" and dysms.refused == 0
    biz = ma.gateway_message_id.removeprefix("aliyun-")
    sent = dysms.sent[biz]
    assert (sent["SignName"], sent["TemplateCode"], sent["PhoneNumbers"], sent["OutId"]) == \
        ("反诈中心", "SMS_100000001", lead_row(sync_engine, a).phone, str(ma.id))
    assert json.loads(sent["TemplateParam"]) == {"name": "陈静", "hotline": "96110"}  # Chinese intact
    # the provider has no receipt yet: kept on the row, not final
    assert tasks.poll_sms_receipts() == {"waiting": 2}
    assert [r.gateway_status for r in rows(sync_engine, a)] == ["1:"] and rows(sync_engine, a)[0].status == "sent"
    assert {q["BizId"] for q in dysms.queries} == {biz, mb.gateway_message_id.removeprefix("aliyun-")}
    assert all(len(q["SendDate"]) == 8 and q["PhoneNumber"] for q in dysms.queries)
    dysms.status[biz] = (3, "DELIVERED")
    dysms.status[mb.gateway_message_id.removeprefix("aliyun-")] = (2, "MOBILE_NOT_ON_SERVICE")
    assert tasks.poll_sms_receipts() == {"delivered": 1, "failed": 1}
    [ma], [mb] = rows(sync_engine, a), rows(sync_engine, b)
    assert (ma.status, ma.gateway_status) == ("delivered", "3:DELIVERED")
    assert (mb.status, mb.error) == ("failed", "receipt: 2:MOBILE_NOT_ON_SERVICE")
    assert [e.data["rule"] for e in events(sync_engine, b, "escalated")] == ["sms_failed"]  # P3 → a call
    assert tasks.poll_sms_receipts() == {}  # nothing left to ask about


def test_signature_depends_on_the_secret_and_flash_uses_its_template(dysms):
    from dispatch.ladder.gateways import GatewayRejected

    out = Outgoing("13800138000", "【反诈中心】…", "k-1", "warning", 7, True, {"name": "市民", "hotline": "96110"})
    with pytest.raises(GatewayRejected, match="SignatureDoesNotMatch"):
        aliyun(dysms, "another-secret-000000").send(out)
    assert dysms.refused == 1 and not dysms.sent
    biz = aliyun(dysms).send(out).removeprefix("aliyun-")
    assert dysms.sent[biz]["TemplateCode"] == "SMS_100000002" and dysms.refused == 1
