"""The one way any capability asks for an SMS: a `sms_message` row in its unit of work, put on that
unit of work's outbox so a worker hands it to the gateway right after the commit. Templates,
gateways, delivery and receipts are the ladder's (`dispatch.ladder.sms`)."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session

from dispatch import outbox
from dispatch.enums import SmsPurpose
from dispatch.models import SmsMessage


def queue_sms(session: Session, *, to_phone: str, body: str, purpose: SmsPurpose | str, idempotency_key: str,
              lead_id: int | None = None, assignment_id: int | None = None) -> int:
    """Add an SMS (idempotent on `idempotency_key`) → its id; a new one goes on the unit of work's
    outbox and is sent right after the commit."""
    row = {"to_phone": to_phone, "body": body, "purpose": SmsPurpose(purpose).value,
           "idempotency_key": idempotency_key, "lead_id": lead_id, "assignment_id": assignment_id}
    new_id = session.execute(insert(SmsMessage).values(**row).on_conflict_do_nothing(
        index_elements=["idempotency_key"]).returning(SmsMessage.id)).scalar()
    if new_id is None:
        return session.execute(select(SmsMessage.id).where(SmsMessage.idempotency_key == idempotency_key)).scalar_one()
    outbox.send_sms(session, new_id)
    return new_id
