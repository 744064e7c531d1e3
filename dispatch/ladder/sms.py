"""短信: warning texts, sending, receipts; the gateways themselves are in `gateways.py`.

Every SMS is a `sms_message` row first (`queue_sms`, in the caller's unit of work), and goes on that
unit of work's outbox: a worker hands it to the gateway right after the commit
(`workers.tasks.send_sms`); a periodic sweep resends anything a crash lost. The row's
`idempotency_key` goes to the gateway with every try, so a retry never sends twice. A flash warning
(闪信, `flash`) goes out as class 0: shown on the screen at once, not stored by the phone."""
from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from dispatch import outbox
from dispatch.enums import FraudType, SmsPurpose, SmsStatus
from dispatch.identity import mask_phone
from dispatch.ladder.deadlines import mark_met_many
from dispatch.ladder.gateways import (  # noqa: F401  (re-exported: the gateways' names as before)
    KANNEL_DLR,
    Gateway,
    GatewayError,
    GatewayRejected,
    HttpGateway,
    LoggingGateway,
    Outgoing,
    PolledReceipts,
    Receipt,
    Sent,
    kannel_id,
    make_gateway,
)
from dispatch.ladder.rules import Step, after_sms_failed
from dispatch.messages import queue_sms
from dispatch.models import Lead, SmsMessage
from dispatch.policy import Policy
from dispatch.states import ACTIVE_LEAD, SMS
from dispatch.timeline import record
from service.core import clock
from service.core.errors import NotFound

# ---------------------------------------------------------------- templates
# Sections of sms_templates.toml and the placeholders each may use.
SECTIONS: dict[str, set[str]] = {
    "templates": {"name", "hotline"},  # the warning, per fraud type (短信劝阻)
    "flash": {"name", "hotline"},  # the flash warning (闪信), per fraud type
    "offer": {"text"},  # wraps field dispatch's offer text: how to reply
    "family": {"name", "hotline"},  # 保护圈: a relative told
}
REPLY_HINT = "回复1接单"


@dataclass(frozen=True, slots=True)
class Templates:
    texts: dict[str, str]
    hotline: str = "96110"
    flash: dict[str, str] = field(default_factory=dict)
    offer: str = "{text} 回复1接单，回复2拒单"
    family: str = "【反诈中心】您的亲属{name}可能正在遭遇电信网络诈骗，请尽快联系劝阻，切勿转账。咨询请拨{hotline}。"

    def render(self, fraud_type: str | None, name: str | None) -> str:
        text = self.texts.get(fraud_type or "", self.texts["default"])
        return text.format(name=name or "市民", hotline=self.hotline)

    def render_flash(self, fraud_type: str | None, name: str | None) -> str:
        text = self.flash.get(fraud_type or "") or self.flash.get("default")
        if text is None:
            return self.render(fraud_type, name)
        return text.format(name=name or "市民", hotline=self.hotline)

    def render_offer(self, text: str) -> str:
        return text if REPLY_HINT in text else self.offer.format(text=text)

    def render_family(self, name: str | None) -> str:
        return self.family.format(name=name or "", hotline=self.hotline)


def _check(source: str, key: str, value, allowed: set[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{source}: key '{key}': must be a non-empty string")
    fields = {f for _, f, _, _ in string.Formatter().parse(value) if f is not None}
    if not fields <= allowed:
        raise ValueError(f"{source}: key '{key}': unknown placeholder(s) {sorted(fields - allowed)}; "
                         f"use {', '.join('{' + a + '}' for a in sorted(allowed))}")
    return value


def parse_templates(text: str, source: str, hotline: str = "96110") -> Templates:
    """Templates from TOML; ValueError names the bad key."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    texts = doc.get("templates")
    if not isinstance(texts, dict) or not isinstance(texts.get("default"), str):
        raise ValueError(f"{source}: key 'templates.default' is required (the text for any fraud type)")
    for section in doc:
        if section not in SECTIONS:
            raise ValueError(f"{source}: section [{section}]: unknown; sections are {sorted(SECTIONS)}")
    per_type: dict[str, dict[str, str]] = {}
    for section in ("templates", "flash"):
        table = doc.get(section, {})
        if not isinstance(table, dict):
            raise ValueError(f"{source}: key '{section}': must be a table")
        for key, value in table.items():
            if key != "default" and key not in FraudType.__members__:
                raise ValueError(f"{source}: key '{section}.{key}': not a fraud type")
            _check(source, f"{section}.{key}", value, SECTIONS[section])
        per_type[section] = dict(table)
    extra = {}
    for section in ("offer", "family"):
        table = doc.get(section)
        if table is None:
            continue
        if not isinstance(table, dict) or set(table) != {"default"}:
            raise ValueError(f"{source}: key '{section}': a table with one key, 'default'")
        extra[section] = _check(source, f"{section}.default", table["default"], SECTIONS[section])
    return Templates(per_type["templates"], hotline, per_type["flash"], **extra)


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
def send_warning_sms(session: Session, lead: Lead, actor: str, *, fresh: bool = False, flash: bool = False,
                     key: str | None = None) -> int | None:
    """Queue the 短信劝阻 text for the lead's fraud type → the message's id (None when `fresh`).
    One per lead and kind unless `key` says otherwise (persistent contact: one per round): the key
    is `lead-<id>-warning`, or `lead-<id>-flash` for a flash warning (闪信, class 0).
    `fresh`: the lead was just tiered, so no message can exist yet and the row is simply added."""
    if not lead.phone:
        record(session, lead.id, actor, "sms_skipped", {"reason": "no_phone", "flash": flash})
        return None
    templates = active_templates()
    body = (templates.render_flash if flash else templates.render)(lead.fraud_type, lead.name)
    key = key or f"lead-{lead.id}-{'flash' if flash else 'warning'}"
    row = dict(lead_id=lead.id, purpose=SmsPurpose.warning.value, to_phone=lead.phone, body=body,
               idempotency_key=key, flash=flash, params={"name": lead.name or "市民", "hotline": templates.hotline})
    if fresh:
        msg = SmsMessage(**row)
        session.add(msg)
        outbox.send_sms(session, msg)
        record(session, lead.id, actor, "sms_queued", {"key": key, "to": mask_phone(lead.phone), "flash": flash})
        return None
    sms_id = session.execute(insert(SmsMessage).values(**row).on_conflict_do_nothing(
        index_elements=["idempotency_key"]).returning(SmsMessage.id)).scalar()
    if sms_id is None:  # queued before: the same message
        return session.execute(select(SmsMessage.id).where(SmsMessage.idempotency_key == key)).scalar_one()
    outbox.send_sms(session, sms_id)
    record(session, lead.id, actor, "sms_queued", {"key": key, "message_id": sms_id, "to": mask_phone(lead.phone),
                                                   "flash": flash})
    return sms_id


def send_family_sms(session: Session, lead: Lead, phone: str, key: str, actor: str) -> int:
    """保护圈: tell a relative (the family template) → the message's id."""
    sms_id = queue_sms(session, to_phone=phone, body=active_templates().render_family(lead.name),
                       purpose=SmsPurpose.family, idempotency_key=key, lead_id=lead.id)
    record(session, lead.id, actor, "sms_queued", {"key": key, "message_id": sms_id, "to": mask_phone(phone),
                                                   "purpose": "family"})
    return sms_id


# ---------------------------------------------------------------- sending and receipts
def deliver_many(session: Session, message_ids: list[int], gateway: Gateway, policy: Policy,
                 max_attempts: int) -> list[tuple[str, list[tuple[int, Step]]]]:
    """Hand pending SMS to the gateway, in order → for each, (sent | retry | failed | skipped, the
    ladder's steps for a warning that failed for good). Skipped: not pending, or another worker holds
    it. The messages are locked in one statement and the warnings' `sms` deadlines met in one (not
    four statements a message). The caller commits, then lets rq retry on `retry`."""
    msgs = {m.id: m for m in session.execute(
        select(SmsMessage).where(SmsMessage.id.in_(message_ids)).with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)).scalars()}
    results: list[tuple[str, list[tuple[int, Step]]]] = []
    warned: dict[int, datetime] = {}  # lead → when its first warning left
    for message_id in message_ids:
        msg = msgs.get(message_id)
        if msg is None or msg.status != SmsStatus.pending:
            results.append(("skipped", []))
            continue
        msg.attempts += 1
        if msg.purpose == SmsPurpose.offer:  # the offer says how to answer it by SMS (replies.py)
            msg.body = active_templates().render_offer(msg.body)
        try:
            gateway_id = gateway.send(Outgoing(msg.to_phone, msg.body, msg.idempotency_key, msg.purpose, msg.id,
                                               msg.flash, msg.params or {}))
        except (GatewayError, GatewayRejected) as exc:
            msg.error = str(exc)[:500]
            if isinstance(exc, GatewayError) and msg.attempts < max_attempts:
                results.append(("retry", []))
                continue
            SMS.move(msg, SmsStatus.failed)
            results.append(("failed", sms_failed(session, msg, policy, "sms_send_failed")))
            continue
        SMS.move(msg, SmsStatus.sent)
        msg.sent_at, msg.gateway_message_id, msg.error = clock.now(), gateway_id, None
        if msg.lead_id is not None and msg.purpose == SmsPurpose.warning:
            warned.setdefault(msg.lead_id, msg.sent_at)
            record(session, msg.lead_id, "worker", "sms_sent", {"message_id": msg.id, "attempts": msg.attempts,
                                                                "flash": msg.flash})
        results.append(("sent", []))
    mark_met_many(session, "sms", warned)
    return results


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
        msg.error = f"receipt: {msg.gateway_status or 'failed'}"
        return True, sms_failed(session, msg, policy, "receipt_failed")
    if msg.lead_id is not None:
        record(session, msg.lead_id, "sms-gateway", "sms_delivered", {"message_id": msg.id})
    return True, []


def kannel_dlr(session: Session, message_id: int, code: int) -> tuple[str, SmsStatus | None]:
    """Kannel's delivery report for our message → (its gateway id, the final status or None). The row
    is locked first: a report that beats the sender's commit waits for it. 8 (accepted by the SMSC)
    and 4 (buffered) are kept on the row and the timeline, and are not final."""
    msg = session.execute(select(SmsMessage).where(SmsMessage.id == message_id).with_for_update()
                          .execution_options(populate_existing=True)).scalar()
    if msg is None:
        raise NotFound(f"no SMS with id {message_id}")
    name, status = KANNEL_DLR[code]
    if msg.status not in (SmsStatus.delivered, SmsStatus.failed):
        msg.gateway_status = f"{code}:{name}"
    if msg.gateway_message_id is None:  # sent, but the worker's commit was lost: Kannel's id is ours
        msg.gateway_message_id = kannel_id(msg.id)
    if status is None and msg.lead_id is not None:
        record(session, msg.lead_id, "sms-gateway", "sms_dlr", {"message_id": msg.id, "code": code, "dlr": name})
    return msg.gateway_message_id, status


POLL_FOR = timedelta(days=2)  # a receipt not come by then will not come


def awaiting_receipts(session: Session, now, limit: int = 500) -> list[Sent]:
    """Messages sent and not final, oldest first (the gateway is asked about each)."""
    rows = session.execute(select(SmsMessage.gateway_message_id, SmsMessage.to_phone, SmsMessage.sent_at)
                           .where(SmsMessage.status == SmsStatus.sent, SmsMessage.sent_at > now - POLL_FOR,
                                  SmsMessage.gateway_message_id.is_not(None))
                           .order_by(SmsMessage.sent_at).limit(limit)).all()
    return [Sent(*r) for r in rows]


def note_receipt(session: Session, receipt: Receipt) -> None:
    """The provider's word on a message still `sent` (Aliyun's SendStatus:ErrCode), kept on the row."""
    msg = session.execute(select(SmsMessage).where(SmsMessage.gateway_message_id == receipt.gateway_message_id)
                          ).scalar()
    if msg is not None and msg.status == SmsStatus.sent:
        msg.gateway_status = receipt.detail
