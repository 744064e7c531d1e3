"""The step a lead is on and when it is due, as a plain function of plain facts: the queue's order
and timer. Steps done stop counting (a met deadline is gone); a missed one still counts, overdue,
until the step is done; the ladder's later deadlines (escalation, on scene, check-in, callback)
count as soon as they are written.

    triage        received, the workers have not placed and tiered it yet
    sign          签收 not given                          → the `sign` deadline
    first_call    in the call queue, nobody called yet    → `first_call` (else `connected_call`)
    call_retry    in the call queue after a failed call   → the last call + desk.call_retry_after
    sms           a warning SMS promised                  → `sms`
    visit_waiting a visit required, no squad asked yet    → `on_scene` / `visit`
    visit_offered offered to a squad                      → `on_scene` / `visit`
    on_the_way    a squad accepted                        → `on_scene` / `visit`
    on_scene      the squad is with the person            → the next check-in (`checkin`)
    center        no squad could take the visit: the center decides  → `on_scene` / `visit`
    callback      回访 due after the lead closed           → `callback`
    working       nothing with a time left to do (a step may still be open without a deadline)

The current step is the open step due soonest (overdue first); steps with no time left to them
come after, in the order above."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

ORDER = ("triage", "sign", "first_call", "call_retry", "sms", "visit_waiting", "visit_offered", "on_the_way",
         "on_scene", "center", "callback", "working")
STEPS = frozenset(ORDER)
VISIT_STEP = {"waiting": "visit_waiting", "offered": "visit_offered", "assigned": "on_the_way",
              "arrived": "on_scene", "failed": "center"}
TIER_RANK = {"P0": 0, "P1": 1, "P2": 2, "P3": 3}


@dataclass(frozen=True, slots=True)
class LeadFacts:
    status: str
    signed: bool
    needs_call: bool
    calls: int = 0
    last_failed_call_at: datetime | None = None
    visit_status: str | None = None  # the lead's open (or failed) visit
    open_deadlines: dict[str, datetime] = field(default_factory=dict)  # pending, or missed and not done since


@dataclass(frozen=True, slots=True)
class Current:
    step: str
    due_at: datetime | None
    open_steps: tuple[tuple[str, datetime | None], ...]  # every open step, the current one first


def current_step(f: LeadFacts, call_retry_after: timedelta) -> Current:
    d = f.open_deadlines
    if f.status == "received":
        return Current("triage", None, (("triage", None),))
    steps: list[tuple[str, datetime | None]] = []
    if f.status == "closed":
        if "callback" in d:
            steps.append(("callback", d["callback"]))
    else:
        if not f.signed:
            steps.append(("sign", d.get("sign")))
        if f.needs_call:
            if f.calls == 0:
                steps.append(("first_call", d.get("first_call") or d.get("connected_call")))
            else:
                retry = f.last_failed_call_at + call_retry_after if f.last_failed_call_at else None
                due = min((t for t in (retry, d.get("connected_call")) if t is not None), default=None)
                steps.append(("call_retry", due))
        if "sms" in d:
            steps.append(("sms", d["sms"]))
        if f.visit_status in VISIT_STEP:
            step = VISIT_STEP[f.visit_status]
            steps.append((step, d.get("checkin") if step == "on_scene" else d.get("on_scene") or d.get("visit")))
    if not steps:
        return Current("working", None, (("working", None),))
    steps.sort(key=lambda s: (s[1] is None, s[1].timestamp() if s[1] else 0.0, ORDER.index(s[0])))
    return Current(steps[0][0], steps[0][1], tuple(steps))
