"""短信: warning texts, the gateway interface and the outbox.

Every SMS is a `sms_message` row first (`queue_sms`, in the caller's transaction); the workers send
pending rows after commit (`workers.tasks.send_sms`) and a periodic sweep resends anything a crash
lost. The row's `idempotency_key` goes to the gateway with every try, so a retry never sends twice."""
from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Protocol

import httpx
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from dispatch.enums import FraudType, SmsPurpose
from dispatch.models import SmsMessage
from dispatch.validation import mask_phone
from service.core.logging import log

QUEUED = "quanzu.sms_to_send"  # session.info key: ids of the messages this unit of work queued


# ---------------------------------------------------------------- templates
@dataclass(frozen=True, slots=True)
class Templates:
    texts: dict[str, str]
    hotline: str = "96110"

    def render(self, fraud_type: str | None, name: str | None) -> str:
        text = self.texts.get(fraud_type or "", self.texts["default"])
        return text.format(name=name or "市民", hotline=self.hotline)


def parse_templates(text: str, source: str, hotline: str = "96110") -> Templates:
    """Templates from TOML; ValueError names the bad key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    texts = doc.get("templates")
    if not isinstance(texts, dict) or not isinstance(texts.get("default"), str):
        raise ValueError(f"{source}: key 'templates.default' is required (the text for any fraud type)")
    for key, value in texts.items():
        if key != "default" and key not in FraudType.__members__:
            raise ValueError(f"{source}: key 'templates.{key}': not a fraud type")
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{source}: key 'templates.{key}': must be a non-empty string")
        fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
        if not fields <= {"name", "hotline"}:
            raise ValueError(f"{source}: key 'templates.{key}': unknown placeholder(s) {sorted(fields)}; "
                             "use {name} and {hotline}")
    return Templates(dict(texts), hotline)


@lru_cache(maxsize=4)
def load_templates(path: Path | None = None, hotline: str = "96110") -> Templates:
    if path is None:
        return parse_templates(resources.files("dispatch").joinpath("sms_templates.toml").read_text("utf-8"),
                               "dispatch/sms_templates.toml", hotline)
    return parse_templates(Path(path).read_text("utf-8"), str(path), hotline)


def active_templates() -> Templates:
    from service.core.settings import get_settings

    s = get_settings()
    return load_templates(s.sms_templates_file, s.sms_hotline)


# ---------------------------------------------------------------- the outbox
def queue_sms(session: Session, *, to_phone: str, body: str, purpose: SmsPurpose | str, idempotency_key: str,
              lead_id: int | None = None, assignment_id: int | None = None) -> int:
    """Add an SMS to the outbox (idempotent on `idempotency_key`) → its id. The caller commits, then
    hands `queued_sms(session)` to `workers.queues.enqueue_sms`; the sweep sends it otherwise."""
    row = {"to_phone": to_phone, "body": body, "purpose": SmsPurpose(purpose).value,
           "idempotency_key": idempotency_key, "lead_id": lead_id, "assignment_id": assignment_id}
    new_id = session.execute(insert(SmsMessage).values(**row).on_conflict_do_nothing(
        index_elements=["idempotency_key"]).returning(SmsMessage.id)).scalar()
    if new_id is None:
        return session.execute(select(SmsMessage.id).where(SmsMessage.idempotency_key == idempotency_key)).scalar_one()
    session.info.setdefault(QUEUED, []).append(new_id)
    return new_id


def queued_sms(session: Session) -> list[int]:
    """The ids of the messages queued in this unit of work (and forgets them): enqueue them after
    commit. Rows added as objects have their ids once flushed."""
    ids = [x if isinstance(x, int) else x.id for x in session.info.pop(QUEUED, [])]
    return [i for i in ids if i is not None]  # a row rolled back (a failed lead's savepoint) has none


# ---------------------------------------------------------------- gateways
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


class Gateway(Protocol):
    def send(self, sms: Outgoing) -> str:
        """Hand one message over → the gateway's message id (receipts name it)."""
        ...


class LoggingGateway:
    """The default (demo): writes the message to the log, phone masked, and calls it sent."""

    def send(self, sms: Outgoing) -> str:
        log.info("sms_logged", to=mask_phone(sms.to_phone), purpose=sms.purpose, key=sms.idempotency_key,
                 chars=len(sms.body))
        return f"log-{sms.idempotency_key}"


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
        if r.status_code in (408, 425, 429) or r.status_code >= 500:
            raise GatewayError(f"gateway answered {r.status_code}")
        if r.status_code >= 400:
            raise GatewayRejected(f"gateway refused the message: {r.status_code} {r.text[:200]}")
        try:
            message_id = r.json()["message_id"]
        except (ValueError, KeyError, TypeError):
            raise GatewayError("gateway answer without message_id") from None
        return str(message_id)


def make_gateway(settings) -> Gateway:
    if settings.sms_gateway_url:
        return HttpGateway(settings.sms_gateway_url, settings.sms_timeout_seconds, settings.sms_gateway_token)
    return LoggingGateway()
