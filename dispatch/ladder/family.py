"""保护圈: the person's family and friends, told when the person will not listen (a busy line on an
urgent lead, a refusal, "I have already transferred"). Contacts are kept with the person's phone and
ID number, so a later warning about the same person finds the same circle; at most
`family.max_contacts` per person."""
from __future__ import annotations

from sqlalchemy import or_, select
from sqlmodel import Session

from dispatch.identity import mask_phone, normalize_phone
from dispatch.ladder.service import lock_lead, touch
from dispatch.ladder.sms import send_family_sms
from dispatch.models import FamilyContact, Lead
from dispatch.policy import Policy
from dispatch.timeline import record
from service.core.auth import Principal
from service.core.errors import Conflict, ValidationFailed


def contacts_of(session: Session, lead: Lead, limit: int) -> list[FamilyContact]:
    """The person's circle: contacts given with this lead or with any lead of the same phone or ID number."""
    same = [FamilyContact.lead_id == lead.id]
    if lead.phone:
        same.append(FamilyContact.subject_phone == lead.phone)
    if lead.id_number:
        same.append(FamilyContact.subject_id_number == lead.id_number)
    rows = session.execute(select(FamilyContact).where(or_(*same)).order_by(FamilyContact.id)).scalars().all()
    seen, out = set(), []
    for c in rows:  # one per phone: the first given
        if c.phone not in seen:
            seen.add(c.phone)
            out.append(c)
    return out[:limit]


def public(c: FamilyContact, full: bool) -> dict:
    return {"id": c.id, "name": c.name, "relation": c.relation, "phone": c.phone if full else mask_phone(c.phone),
            "added_by": c.added_by, "lead_id": c.lead_id}


def add_contact(session: Session, lead_id: int, name: str, relation: str, phone: str, who: Principal,
                policy: Policy) -> FamilyContact:
    lead = lock_lead(session, lead_id)
    number = normalize_phone(phone)
    if number is None:
        raise ValidationFailed([{"field": "phone", "message": "not a mainland mobile or landline number"}])
    if number == lead.phone:
        raise ValidationFailed([{"field": "phone", "message": "that is the person's own number"}])
    circle = contacts_of(session, lead, 1000)
    if any(c.phone == number for c in circle):
        raise Conflict(f"{mask_phone(number)} is already in the person's circle")
    if len(circle) >= policy.family.max_contacts:
        raise Conflict(f"the person's circle is full ({policy.family.max_contacts}: family.max_contacts)")
    c = FamilyContact(lead_id=lead.id, subject_phone=lead.phone, subject_id_number=lead.id_number, name=name,
                      relation=relation, phone=number, added_by=who.name)
    session.add(c)
    session.flush()
    record(session, lead.id, who.actor, "family_added", {"contact_id": c.id, "relation": relation,
                                                         "phone": mask_phone(number)})
    touch(session, lead)
    return c


def notify(session: Session, lead: Lead, rule: str, policy: Policy, actor: str) -> int:
    """Tell the circle (once per contact and rule) when the policy names `rule`; → how many told."""
    if rule not in policy.family.notify_on:
        return 0
    circle = contacts_of(session, lead, policy.family.max_contacts)
    for c in circle:  # the family text of the SMS templates (dispatch/ladder/sms_templates.toml [family])
        send_family_sms(session, lead, c.phone, f"family:{lead.id}:{c.id}:{rule}", actor)
    record(session, lead.id, actor, "family_notified", {
        "rule": rule, "contacts": len(circle), "to": [mask_phone(c.phone) for c in circle],
        "note": None if circle else "no family contact known: add one (POST /leads/{id}/family)"})
    return len(circle)
