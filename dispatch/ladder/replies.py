"""短信回复 (MO): a reply the gateway passed on, matched to the SMS it answers.

- A squad member who got an offer by SMS (the fallback when no phone acked it) answers `1` to accept
  or `2` to decline: matched to the newest SMS offer to that phone whose assignment is still offered;
  the flow (`dispatch.flows.sms_reply`) applies it as that member, as the app would.
- A warned person (or a relative told) who answers: matched to the newest warning (or family) SMS to
  that phone; the text goes on the lead's timeline (`sms_reply`) and on the board (`lead.updated`
  with `reply`), so the operators see it.
- Anyone else: recorded, nothing done.
Every reply is kept in `sms_inbound` with what it became. Phones are masked in logs."""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy import select
from sqlmodel import Session

from dispatch import outbox
from dispatch.enums import AssignmentStatus, SmsPurpose
from dispatch.identity import mask_phone
from dispatch.models import Assignment, Lead, SmsInbound, SmsMessage
from dispatch.timeline import record
from service.core import clock
from service.core.auth import Principal
from service.core.logging import log
from service.core.models import User

ACCEPT = {"1", "接单", "接受", "是"}
DECLINE = {"2", "拒单", "拒绝", "否"}
MAX_TEXT = 500


def normalize_phone(raw: str) -> str:
    """+86 138 0013 8000, 008613800138000, 8613800138000 → 13800138000; anything else: its digits."""
    digits = re.sub(r"\D", "", raw or "")
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11 and digits[len(prefix)] == "1":
            return digits[len(prefix):]
    return digits


def phone_forms(phone: str) -> list[str]:
    """The ways a stored phone may be written (rows keep what the source sent)."""
    return sorted({phone, f"+86{phone}", f"86{phone}", f"0086{phone}"})


def offer_answer(text: str) -> bool | None:
    """`1` (accept) / `2` (decline), full-width digits and a trailing word or dot allowed → True / False;
    anything else None."""
    t = unicodedata.normalize("NFKC", text or "").strip()
    word = re.split(r"[\s.,。，!！]+", t, maxsplit=1)[0] if t else ""
    if word in ACCEPT:
        return True
    if word in DECLINE:
        return False
    return None


@dataclass(frozen=True, slots=True)
class OfferReply:
    sms_id: int
    assignment_id: int
    lead_id: int
    member: Principal
    accept: bool


@dataclass(frozen=True, slots=True)
class PersonReply:
    sms_id: int
    lead_id: int
    purpose: str


def _member(session: Session, msg: SmsMessage, team_code: str) -> Principal | None:
    """The member the offer SMS went to: its key is `offer:<assignment>:<username>` (field dispatch)."""
    parts = msg.idempotency_key.split(":", 2)
    if len(parts) != 3 or parts[0] != "offer":
        return None
    user = session.execute(select(User).where(User.username == parts[2], User.active.is_(True))).scalar()
    if user is None or user.team_code != team_code:
        return None
    return Principal(user.username, user.role, user.team_code)


def match_reply(session: Session, phone: str, text: str) -> OfferReply | PersonReply | None:
    forms = phone_forms(phone)
    answer = offer_answer(text)
    if answer is not None:
        row = session.execute(
            select(SmsMessage, Assignment.team_code).join(Assignment, Assignment.id == SmsMessage.assignment_id)
            .where(SmsMessage.to_phone.in_(forms), SmsMessage.purpose == SmsPurpose.offer,
                   Assignment.status == AssignmentStatus.offered)
            .order_by(SmsMessage.id.desc()).limit(1)).first()
        if row is not None:
            member = _member(session, row[0], row[1])
            if member is not None:
                return OfferReply(row[0].id, row[0].assignment_id, row[0].lead_id, member, answer)
    msg = session.execute(
        select(SmsMessage).where(SmsMessage.to_phone.in_(forms), SmsMessage.lead_id.is_not(None),
                                 SmsMessage.purpose.in_((SmsPurpose.warning, SmsPurpose.family)))
        .order_by(SmsMessage.id.desc()).limit(1)).scalar()
    if msg is not None:
        return PersonReply(msg.id, msg.lead_id, msg.purpose)
    return None


def keep(session: Session, phone: str, to: str | None, text: str, kind: str, match=None,
         error: str | None = None) -> SmsInbound:
    row = SmsInbound(from_phone=phone, to_number=to, text=text[:MAX_TEXT], kind=kind,
                     sms_message_id=match.sms_id if match else None, lead_id=match.lead_id if match else None,
                     assignment_id=getattr(match, "assignment_id", None), error=error)
    session.add(row)
    log.info("sms_reply", kind=kind, sender=mask_phone(phone), chars=len(text),
             lead_id=row.lead_id, assignment_id=row.assignment_id, error=error)
    return row


def person_replied(session: Session, reply: PersonReply, phone: str, text: str) -> None:
    """On the lead's timeline and the board, text kept, phone masked."""
    at = clock.now()
    data = {"message_id": reply.sms_id, "text": text[:MAX_TEXT], "from": mask_phone(phone), "purpose": reply.purpose}
    record(session, reply.lead_id, "sms", "sms_reply", data)
    lead = session.get(Lead, reply.lead_id)
    outbox.board(session, "lead.updated", {"lead_id": reply.lead_id, "reply": {**data, "at": clock.iso(at)}},
                 district=lead.district_code if lead is not None else None)
