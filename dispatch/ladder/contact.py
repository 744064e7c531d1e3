"""Contact that persists (持续联系): for the tiers the policy names (`[contact.P1]` …), a round every
`every` — a flash SMS, a robot call — until the person is reached (a connected call, a reply), an
operator added after `operator_after` rounds unanswered, a visit after `until`. Each round is the
`contact` deadline row coming due: the workers' sweep runs the round and writes the next one, so a
crash or a Redis flush loses no round; a missed round is not an alarm (it is the schedule)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlmodel import Session

from dispatch.enums import Tier
from dispatch.ladder import deadlines
from dispatch.ladder.rules import Step
from dispatch.ladder.sms import send_warning_sms
from dispatch.models import Lead, LeadEvent
from dispatch.policy import Contact, Policy
from dispatch.timeline import record

NAME = "contact"


def plan_of(policy: Policy, lead: Lead) -> Contact | None:
    return policy.contact.get(Tier(lead.tier)) if lead.tier else None


def start(session: Session, lead: Lead, policy: Policy, now: datetime, actor: str) -> list[Step]:
    """The first round at once (the lead was just tiered), the next one scheduled."""
    if plan_of(policy, lead) is None or not lead.phone:
        return []
    return run_round(session, lead, policy, now, actor)


def _rounds(session: Session, lead_id: int) -> int:
    return session.execute(select(func.count()).select_from(LeadEvent).where(
        LeadEvent.lead_id == lead_id, LeadEvent.kind == "contact_round")).scalar_one()


def run_round(session: Session, lead: Lead, policy: Policy, now: datetime, actor: str) -> list[Step]:
    """One round → the steps the ladder takes (an operator call, a visit once `until` has passed)."""
    plan = plan_of(policy, lead)
    if plan is None or lead.status not in ("tiered", "working"):
        return []
    if now - lead.received_at >= plan.until:
        record(session, lead.id, actor, "contact_stopped", {"why": "unanswered", "until": str(plan.until)})
        return [Step("visit", "contact_unanswered")]
    n = _rounds(session, lead.id) + 1
    sent = []
    for channel in plan.channels:
        if channel in ("flash_sms", "sms"):  # 闪信 is class 0: on the screen at once, until read
            send_warning_sms(session, lead, actor, flash=channel == "flash_sms",
                             key=f"lead-{lead.id}-contact-{n}-{channel}")
            sent.append(channel)
        else:  # robot_call: the robot platform is asked through its own intake; its result comes back
            sent.append(channel)  # through POST /calls/results and stops the rounds when connected
    steps = []
    if n > plan.operator_after and not lead.needs_call:
        steps.append(Step("call", "contact_operator"))
    deadlines.reset_deadline(session, lead.id, NAME, now + plan.every)
    record(session, lead.id, actor, "contact_round", {"round": n, "channels": sent,
                                                      "next_at": (now + plan.every).isoformat()})
    return steps


def stop(session: Session, lead_id: int, why: str, actor: str) -> bool:
    """The person was reached: no more rounds."""
    if deadlines.cancel_deadlines(session, lead_id, (NAME,)):
        record(session, lead_id, actor, "contact_stopped", {"why": why})
        return True
    return False
