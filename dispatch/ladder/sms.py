"""短信: warning texts, the gateway interface, sending and receipts.

Every SMS is a `sms_message` row first (`queue_sms`, in the caller's unit of work), and goes on that
unit of work's outbox: a worker hands it to the gateway right after the commit
(`workers.tasks.send_sms`); a periodic sweep resends anything a crash lost. The row's
`idempotency_key` goes to the gateway with every try, so a retry never sends twice."""
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
from sqlmodel import Session

from dispatch import outbox
from dispatch.enums import FraudType, SmsPurpose, SmsStatus
from dispatch.identity import mask_phone
from dispatch.ladder.deadlines import mark_met
from dispatch.ladder.rules import Step, after_sms_failed
from dispatch.messages import queue_sms
from dispatch.models import Lead, SmsMessage
from dispatch.policy import Policy
from dispatch.states import ACTIVE_LEAD, SMS
from dispatch.timeline import record
from service.core import clock
from service.core.errors import NotFound
from service.core.logging import log


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
        return parse_templates(resources.files("dispatch.ladder").joinpath("sms_templates.toml").read_text("utf-8"),
                               "dispatch/ladder/sms_templates.toml", hotline)
    return parse_templates(Path(path).read_text("utf-8"), str(path), hotline)


def active_templates() -> Templates:
    from service.core.settings import get_settings

    s = get_settings()
    return load_templates(s.sms_templates_file, s.sms_hotline)


# ---------------------------------------------------------------- queueing
def send_warning_sms(session: Session, lead: Lead, actor: str, *, fresh: bool = False) -> int | None:
    """Queue the 短信劝阻 text for the lead's fraud type (one per lead: the key is the lead's).
    `fresh`: the lead was just tiered, so no message can exist yet and the row is simply added."""
    if not lead.phone:
        record(session, lead.id, actor, "sms_skipped", {"reason": "no_phone"})
        return None
    body, key = active_templates().render(lead.fraud_type, lead.name), f"lead-{lead.id}-warning"
    if fresh:
        msg = SmsMessage(lead_id=lead.id, purpose=SmsPurpose.warning.value, to_phone=lead.phone, body=body,
                         idempotency_key=key)
        session.add(msg)
        outbox.send_sms(session, msg)
        record(session, lead.id, actor, "sms_queued", {"key": key, "to": mask_phone(lead.phone)})
        return None
    sms_id = queue_sms(session, to_phone=lead.phone, body=body, purpose=SmsPurpose.warning, idempotency_key=key,
                       lead_id=lead.id)
    record(session, lead.id, actor, "sms_queued", {"key": key, "message_id": sms_id, "to": mask_phone(lead.phone)})
    return sms_id


# ---------------------------------------------------------------- sending and receipts
def deliver_sms(session: Session, message_id: int, gateway: Gateway, policy: Policy,
                max_attempts: int) -> tuple[str, list[tuple[int, Step]]]:
    """Hand one pending SMS to the gateway → (sent | retry | failed | skipped, the ladder's steps for
    a warning that failed for good). Skipped: not pending, or another worker holds it. The caller
    commits, then lets rq retry on `retry`."""
    msg = session.execute(select(SmsMessage).where(SmsMessage.id == message_id).with_for_update(skip_locked=True)
                          .execution_options(populate_existing=True)).scalar()
    if msg is None or msg.status != SmsStatus.pending:
        return "skipped", []
    msg.attempts += 1
    try:
        gateway_id = gateway.send(Outgoing(msg.to_phone, msg.body, msg.idempotency_key, msg.purpose))
    except (GatewayError, GatewayRejected) as exc:
        msg.error = str(exc)[:500]
        if isinstance(exc, GatewayError) and msg.attempts < max_attempts:
            return "retry", []
        SMS.move(msg, SmsStatus.failed)
        return "failed", sms_failed(session, msg, policy, "sms_send_failed")
    SMS.move(msg, SmsStatus.sent)
    msg.sent_at, msg.gateway_message_id, msg.error = clock.now(), gateway_id, None
    if msg.lead_id is not None and msg.purpose == SmsPurpose.warning:
        mark_met(session, msg.lead_id, "sms", msg.sent_at)
        record(session, msg.lead_id, "worker", "sms_sent", {"message_id": msg.id, "attempts": msg.attempts})
    return "sent", []


def sms_failed(session: Session, msg: SmsMessage, policy: Policy, why: str) -> list[tuple[int, Step]]:
    """A warning SMS that did not reach the person: recorded → the ladder's step (policy:
    ladder.sms_failed_to_call turns P3 into a call), for the caller's flow."""
    if msg.lead_id is None or msg.purpose != SmsPurpose.warning:
        return []
    lead = session.execute(select(Lead).where(Lead.id == msg.lead_id).with_for_update(key_share=True)).scalar_one()
    record(session, lead.id, "worker", "sms_failed", {"message_id": msg.id, "why": why, "error": msg.error})
    step = after_sms_failed(policy, lead.tier)
    if step is None or lead.status not in ACTIVE_LEAD or lead.needs_call:
        return []
    return [(lead.id, step)]


def apply_receipt(session: Session, gateway_message_id: str, status: SmsStatus,
                  policy: Policy) -> tuple[bool, list[tuple[int, Step]]]:
    """A delivery receipt → (changed, the ladder's steps). A receipt for a message already final is ignored."""
    msg = session.execute(select(SmsMessage).where(SmsMessage.gateway_message_id == gateway_message_id)
                          .with_for_update()).scalar()
    if msg is None:
        raise NotFound(f"no SMS with message_id {gateway_message_id!r}")
    if not SMS.can(msg.status, status):
        return False, []
    SMS.move(msg, status)
    msg.receipt_at = clock.now()
    if status == SmsStatus.failed:
        msg.error = "receipt: failed"
        return True, sms_failed(session, msg, policy, "receipt_failed")
    if msg.lead_id is not None:
        record(session, msg.lead_id, "sms-gateway", "sms_delivered", {"message_id": msg.id})
    return True, []


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
