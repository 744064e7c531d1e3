"""SMS gateways: what hands a message to the phone network, chosen by `SMS_GATEWAY`.

    log      writes it to the log, phone masked (the default, demo)
    http     quanzu's own JSON to SMS_GATEWAY_URL (a set SMS_GATEWAY_URL alone still means this)
    kannel   Kannel's smsbox `sendsms` (GET); delivery reports come back to `dlr-url`, replies (MO)
             through its `sms-service` (dispatch/ladder/sms_router.py)
    aliyun   Alibaba Cloud SMS (dysmsapi `SendSms`, the official SDK); receipts by `QuerySendDetails`,
             polled by the workers (`poll`)

A gateway's `send` answers the id receipts will name, or raises GatewayError (not taken this time:
retried) or GatewayRejected (refused for good)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable
from urllib.parse import quote, urlsplit

import httpx

from dispatch.enums import SmsPurpose, SmsStatus
from dispatch.identity import mask_phone
from service.core import clock
from service.core.logging import log


class GatewayError(Exception):
    """The gateway did not take the message this time (timeout, 5xx, connection): retry later."""


class GatewayRejected(Exception):
    """The gateway refused the message for good (4xx): retrying cannot help."""


@dataclass(frozen=True, slots=True)
class Outgoing:
    to_phone: str
    body: str
    idempotency_key: str
    purpose: str
    message_id: int | None = None  # our sms_message id (Kannel's dlr-url, Aliyun's OutId)
    flash: bool = False  # 闪信: class 0, shown on the screen and not stored
    params: dict = field(default_factory=dict)  # a template's parameters (Aliyun)


@dataclass(frozen=True, slots=True)
class Sent:
    """A message handed over and not final yet, for a gateway whose receipts are polled."""
    gateway_message_id: str
    to_phone: str
    sent_at: datetime


@dataclass(frozen=True, slots=True)
class Receipt:
    gateway_message_id: str
    status: SmsStatus | None  # None: not final yet (waiting)
    detail: str  # the provider's own word, kept on the row (gateway_status)


class Gateway(Protocol):
    def send(self, sms: Outgoing) -> str:
        """Hand one message over → the gateway's message id (receipts name it)."""
        ...


@runtime_checkable
class PolledReceipts(Protocol):
    """A gateway that does not call back: its receipts are asked for (the workers' sweep)."""

    def poll(self, sent: list[Sent]) -> list[Receipt]:
        ...


# ---------------------------------------------------------------- log, http
class LoggingGateway:
    """The default (demo): writes the message to the log, phone masked, and calls it sent."""

    def send(self, sms: Outgoing) -> str:
        log.info("sms_logged", to=mask_phone(sms.to_phone), purpose=sms.purpose, key=sms.idempotency_key,
                 chars=len(sms.body), flash=sms.flash)
        return f"log-{sms.idempotency_key}"


def _http_status(status_code: int, text: str) -> None:
    """The common reading of an HTTP answer: 408/425/429/5xx retried, other 4xx refused for good."""
    if status_code in (408, 425, 429) or status_code >= 500:
        raise GatewayError(f"gateway answered {status_code}")
    if status_code >= 400:
        raise GatewayRejected(f"gateway refused the message: {status_code} {text[:200]}")


class HttpGateway:
    """POST {"to", "body", "idempotency_key", "purpose"} to SMS_GATEWAY_URL, header Idempotency-Key;
    a 2xx answer carries {"message_id"}. The gateway must answer a repeated key with the first
    message's id without sending again (the usual contract of SMS APIs)."""

    def __init__(self, url: str, timeout: float = 5.0, token: str | None = None,
                 client: httpx.Client | None = None):
        self.url = url
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout), headers=headers)

    def send(self, sms: Outgoing) -> str:
        try:
            r = self.client.post(self.url, json={"to": sms.to_phone, "body": sms.body, "purpose": sms.purpose,
                                                 "idempotency_key": sms.idempotency_key},
                                 headers={"Idempotency-Key": sms.idempotency_key})
        except httpx.HTTPError as exc:  # timeouts, refused connections, broken answers
            raise GatewayError(f"{exc.__class__.__name__}: {exc}") from exc
        _http_status(r.status_code, r.text)
        try:
            message_id = r.json()["message_id"]
        except (ValueError, KeyError, TypeError):
            raise GatewayError("gateway answer without message_id") from None
        return str(message_id)


# ---------------------------------------------------------------- Kannel
KANNEL_OK = ("0:", "3:")  # 0: Accepted for delivery, 3: Queued for later delivery (no SMSC connected yet)


def kannel_id(message_id: int) -> str:
    return f"kannel-{message_id}"


class KannelGateway:
    """Kannel's smsbox: GET sendsms with the sendsms-user's credentials. Chinese goes as UTF-8 and
    Kannel sends it as UCS-2 (coding=2); every message asks for all delivery reports (dlr-mask=31)
    at quanzu's `/api/v1/sms/kannel/dlr`, which Kannel calls with `%d` replaced by its code."""

    def __init__(self, sendsms_url: str, username: str, password: str, sender: str, public_url: str,
                 api_key: str, timeout: float = 5.0, client: httpx.Client | None = None):
        self.url, self.sender = sendsms_url, sender
        self.auth = {"username": username, "password": password}
        self.dlr_base = f"{public_url.rstrip('/')}/api/v1/sms/kannel/dlr?key={quote(api_key, safe='')}"
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout))

    def query(self, sms: Outgoing) -> dict[str, str]:
        q = {**self.auth, "to": sms.to_phone, "from": self.sender, "text": sms.body, "charset": "UTF-8",
             "coding": "2"}
        if sms.message_id is not None:
            q["dlr-mask"] = "31"
            q["dlr-url"] = f"{self.dlr_base}&id={sms.message_id}&status=%d"
        if sms.flash:
            q["mclass"] = "0"
        return q

    def send(self, sms: Outgoing) -> str:
        if sms.message_id is None:
            raise GatewayRejected("Kannel needs the message's id for its delivery reports")
        try:
            r = self.client.get(self.url, params=self.query(sms))
        except httpx.HTTPError as exc:
            raise GatewayError(f"{exc.__class__.__name__}: {exc}") from exc
        _http_status(r.status_code, r.text)
        if not r.text.startswith(KANNEL_OK):
            raise GatewayError(f"Kannel answered {r.status_code} {r.text[:200]!r}")
        return kannel_id(sms.message_id)


# Kannel's DLR codes (user guide, "Delivery reports") → our status; None: recorded, not final.
KANNEL_DLR: dict[int, tuple[str, SmsStatus | None]] = {
    1: ("delivered", SmsStatus.delivered),
    2: ("failed", SmsStatus.failed),
    4: ("buffered", None),
    8: ("accepted_by_smsc", None),
    16: ("rejected_by_smsc", SmsStatus.failed),
}


# ---------------------------------------------------------------- Alibaba Cloud
@dataclass(frozen=True, slots=True)
class AliyunConfig:
    access_key_id: str
    access_key_secret: str
    sign_name: str
    templates: dict[str, str]  # purpose (warning, flash_warning, offer, family) → template code
    endpoint: str = "dysmsapi.aliyuncs.com"
    timeout: float = 5.0


# SendStatus of QuerySendDetails (dysmsapi docs): 1 waiting for the receipt, 2 failed, 3 delivered.
ALIYUN_SEND_STATUS: dict[int, SmsStatus | None] = {1: None, 2: SmsStatus.failed, 3: SmsStatus.delivered}
# SendSms codes that mean "not now" rather than "never".
ALIYUN_RETRY_CODES = ("isv.BUSINESS_LIMIT_CONTROL", "Throttling", "isp.")


def aliyun_id(biz_id: str) -> str:
    return f"aliyun-{biz_id}"


class AliyunGateway:
    """Alibaba Cloud SMS through its official SDK (alibabacloud-dysmsapi20170525): `SendSms` with
    the sign name, the purpose's template code and its parameters as JSON; `QuerySendDetails` for
    receipts. The SDK's own retries are off: rq's Retry and our sweep retry."""

    def __init__(self, cfg: AliyunConfig):
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi import models as openapi

        parts = urlsplit(cfg.endpoint if "://" in cfg.endpoint else f"https://{cfg.endpoint}")
        self.cfg = cfg
        self.client = Client(openapi.Config(access_key_id=cfg.access_key_id, access_key_secret=cfg.access_key_secret,
                                            endpoint=parts.netloc, protocol=parts.scheme))

    def _runtime(self):
        from darabonba.runtime import RuntimeOptions

        ms = int(self.cfg.timeout * 1000)
        return RuntimeOptions(autoretry=False, read_timeout=ms, connect_timeout=ms)

    def template(self, sms: Outgoing) -> str:
        key = "flash_warning" if sms.flash and sms.purpose == SmsPurpose.warning else sms.purpose
        code = self.cfg.templates.get(key) or self.cfg.templates.get(sms.purpose)
        if not code:
            raise GatewayRejected(f"no Aliyun template code for purpose {key!r} (ALIYUN_TEMPLATE_{key.upper()})")
        return code

    def _call(self, what: str, fn):
        from alibabacloud_tea_openapi.exceptions import ClientException, ThrottlingException
        from darabonba.exceptions import DaraException, RetryError, UnretryableException

        try:
            return fn()
        except ThrottlingException as exc:
            raise GatewayError(f"Aliyun {what} throttled: {exc.code}") from exc
        except ClientException as exc:
            raise GatewayRejected(f"Aliyun {what} refused: {exc.status_code} {exc.code}") from exc
        except (DaraException, RetryError, UnretryableException, OSError) as exc:  # 5xx, connection, timeout
            raise GatewayError(f"Aliyun {what}: {exc.__class__.__name__}: {str(exc)[:200]}") from exc

    def send(self, sms: Outgoing) -> str:
        from alibabacloud_dysmsapi20170525 import models

        request = models.SendSmsRequest(
            phone_numbers=sms.to_phone, sign_name=self.cfg.sign_name, template_code=self.template(sms),
            template_param=json.dumps(sms.params or {"content": sms.body}, ensure_ascii=False),
            out_id=str(sms.message_id) if sms.message_id is not None else sms.idempotency_key)
        body = self._call("SendSms", lambda: self.client.send_sms_with_options(request, self._runtime())).body
        if body.code != "OK":
            if body.code and body.code.startswith(ALIYUN_RETRY_CODES):
                raise GatewayError(f"Aliyun SendSms: {body.code} {body.message}")
            raise GatewayRejected(f"Aliyun SendSms refused: {body.code} {body.message}")
        if not body.biz_id:
            raise GatewayError("Aliyun SendSms answered OK without BizId")
        return aliyun_id(body.biz_id)

    def poll(self, sent: list[Sent]) -> list[Receipt]:
        """QuerySendDetails per message (by phone, BizId and the day it was sent, in China's time)."""
        from alibabacloud_dysmsapi20170525 import models

        out = []
        for s in sent:
            if not s.gateway_message_id.startswith("aliyun-"):
                continue
            request = models.QuerySendDetailsRequest(
                phone_number=s.to_phone, biz_id=s.gateway_message_id.removeprefix("aliyun-"),
                send_date=f"{s.sent_at.astimezone(clock.CENTER_TZ):%Y%m%d}", page_size=10, current_page=1)
            try:
                body = self._call("QuerySendDetails",
                                  lambda r=request: self.client.query_send_details_with_options(r, self._runtime())).body
            except (GatewayError, GatewayRejected) as exc:
                log.warning("aliyun_receipt_query_failed", error=str(exc))
                continue
            out.extend(parse_send_details(s.gateway_message_id, body))
        return out


def parse_send_details(gateway_message_id: str, body) -> list[Receipt]:
    """The documented answer: `SmsSendDetailDTOs.SmsSendDetailDTO[]`, each with `SendStatus` and
    `ErrCode` (DELIVERED when delivered)."""
    if getattr(body, "code", "OK") != "OK":
        return []
    dtos = getattr(getattr(body, "sms_send_detail_dtos", None), "sms_send_detail_dto", None) or []
    out = []
    for d in dtos[:1]:  # one BizId, one message
        status = ALIYUN_SEND_STATUS.get(int(d.send_status or 1))
        out.append(Receipt(gateway_message_id, status, f"{d.send_status}:{d.err_code or ''}"))
    return out


# ---------------------------------------------------------------- by configuration
def gateway_kind(settings) -> str:
    return settings.sms_gateway or ("http" if settings.sms_gateway_url else "log")


def make_gateway(settings) -> Gateway:
    kind = gateway_kind(settings)
    if kind == "http":
        if not settings.sms_gateway_url:
            raise ValueError("SMS_GATEWAY=http needs SMS_GATEWAY_URL")
        return HttpGateway(settings.sms_gateway_url, settings.sms_timeout_seconds, settings.sms_gateway_token)
    if kind == "kannel":
        return KannelGateway(settings.kannel_sendsms_url, settings.kannel_username, settings.kannel_password,
                             settings.sms_sender, settings.public_url, settings.sms_gateway_api_key,
                             settings.sms_timeout_seconds)
    if kind == "aliyun":
        templates = {p: getattr(settings, f"aliyun_template_{p}") for p in ("warning", "flash_warning", "offer",
                                                                           "family")}
        return AliyunGateway(AliyunConfig(settings.aliyun_access_key_id, settings.aliyun_access_key_secret,
                                          settings.aliyun_sms_sign_name, {k: v for k, v in templates.items() if v},
                                          settings.aliyun_sms_endpoint, settings.sms_timeout_seconds))
    return LoggingGateway()
