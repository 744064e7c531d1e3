"""One state machine per record: the statuses each record may be created in and move between.
Every status change goes through `Machine.move` (409 for a move the table does not allow); a
bulk UPDATE names its from-states with `Machine.sources`. Nothing else writes a status."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

from dispatch.enums import (
    AssignmentStatus,
    CallbackState,
    CallState,
    DeadlineState,
    LeadStatus,
    SmsStatus,
    VisitStatus,
)
from service.core.errors import Conflict

S = TypeVar("S", bound=StrEnum)


@dataclass(frozen=True)
class Machine(Generic[S]):
    record: str  # what the table is of, for messages: "lead", "visit", ...
    states: type[S]
    initial: frozenset[S]
    allowed: Mapping[S, frozenset[S]]

    def __post_init__(self) -> None:  # a table that forgets a state is a bug here, not at 3 a.m.
        assert set(self.allowed) == set(self.states), f"{self.record}: every state needs a row"

    def can(self, a: S | str, b: S | str) -> bool:
        try:
            return self.states(b) in self.allowed[self.states(a)]
        except ValueError:
            return False

    def sources(self, to: S) -> tuple[str, ...]:
        """The states that may move to `to` (for an UPDATE's WHERE)."""
        return tuple(a.value for a, bs in self.allowed.items() if to in bs)

    def move(self, row, to: S, *, attr: str = "status") -> S:
        """Set `row.<attr>` to `to` if the table allows it, else 409 → the state it was in."""
        was = self.states(getattr(row, attr))
        if to not in self.allowed[was]:
            raise Conflict(f"{self.record} {getattr(row, 'id', '')} is {was}; it cannot become {to}".replace("  ", " "))
        setattr(row, attr, to.value)
        return was

    def terminal(self) -> frozenset[S]:
        return frozenset(a for a, bs in self.allowed.items() if not bs)


def _t(machine_states: dict) -> dict:
    return {a: frozenset(bs) for a, bs in machine_states.items()}


L, V, A = LeadStatus, VisitStatus, AssignmentStatus

LEAD = Machine("lead", LeadStatus, frozenset({L.received}), _t({
    L.received: {L.tiered, L.transferred},
    L.tiered: {L.working, L.closed, L.transferred},
    L.working: {L.closed, L.transferred},
    L.closed: {L.working},  # reopened: a callback found the person defrauded after all
    # Handed outside the city after its urgent steps began here: the city center may still close it.
    L.transferred: {L.closed},
}))

VISIT = Machine("visit", VisitStatus, frozenset({V.waiting}), _t({
    V.waiting: {V.offered, V.failed, V.cancelled},
    V.offered: {V.assigned, V.waiting, V.cancelled},  # waiting again: declined, expired, withdrawn
    V.assigned: {V.arrived, V.done, V.cancelled},
    V.arrived: {V.done, V.cancelled},
    V.failed: {V.cancelled},  # the center's own assign asks for a new visit
    V.done: set(),
    V.cancelled: set(),
}))

ASSIGNMENT = Machine("assignment", AssignmentStatus, frozenset({A.offered}), _t({
    A.offered: {A.accepted, A.declined, A.expired, A.withdrawn},
    A.accepted: {A.arrived, A.completed, A.withdrawn},
    A.arrived: {A.completed, A.withdrawn},
    A.declined: set(),
    A.expired: set(),
    A.withdrawn: set(),
    A.completed: set(),
}))

SMS = Machine("sms", SmsStatus, frozenset({SmsStatus.pending}), _t({
    SmsStatus.pending: {SmsStatus.sent, SmsStatus.failed, SmsStatus.delivered},  # a receipt may beat our commit
    SmsStatus.sent: {SmsStatus.delivered, SmsStatus.failed},
    SmsStatus.delivered: set(),
    SmsStatus.failed: set(),
}))

DEADLINE = Machine("deadline", DeadlineState, frozenset({DeadlineState.pending, DeadlineState.met}), _t({
    DeadlineState.pending: {DeadlineState.met, DeadlineState.missed, DeadlineState.cancelled},
    DeadlineState.missed: {DeadlineState.pending},  # a new promise (tier override); the miss stays in the trail
    DeadlineState.cancelled: {DeadlineState.pending},
    DeadlineState.met: set(),
}))

CALL = Machine("call", CallState, frozenset({CallState.recorded}), _t({CallState.recorded: set()}))

CALLBACK = Machine("callback", CallbackState, frozenset({CallbackState.due}), _t({
    CallbackState.due: {CallbackState.done},
    CallbackState.done: set(),
}))

MACHINES: tuple[Machine, ...] = (LEAD, VISIT, ASSIGNMENT, SMS, DEADLINE, CALL, CALLBACK)

OPEN_VISIT = (V.waiting, V.offered, V.assigned, V.arrived)
OPEN_ASSIGNMENT = (A.offered, A.accepted, A.arrived)
ACTIVE_LEAD = (L.tiered, L.working)

# Center actions that keep the status: the statuses each may act in (anything else is 409).
ACTION_STATUSES: dict[str, frozenset[LeadStatus]] = {
    "sign": frozenset({L.received, L.tiered, L.working}),  # 签收
    "tier": frozenset({L.tiered, L.working}),  # override
    "call": frozenset({L.tiered, L.working}),
    "callback": frozenset({L.closed}),
    "assign": frozenset({L.tiered, L.working}),
    "close": frozenset({L.tiered, L.working}),
}

# The reason of a lead placed outside the city (管辖外移交). Its urgent steps (the warning SMS, the
# first call) start here before it leaves, so the city center may still call and close it; any other
# transferred lead is its receiver's, and nothing more is done here.
HANDED_OUT = "out_of_jurisdiction"
AFTER_HANDOUT = frozenset({"call", "close"})


def handed_out(lead) -> bool:
    return lead.status == L.transferred and lead.transfer_reason == HANDED_OUT


def require(lead, action: str) -> None:
    """409 unless the lead's status allows the center action."""
    if action in AFTER_HANDOUT and handed_out(lead):
        return
    if LeadStatus(lead.status) not in ACTION_STATUSES[action]:
        verb = {"close": "closed"}.get(action, f"{action}ed")
        raise Conflict(f"lead {lead.id} is {lead.status}: it cannot be {verb} now" if action != "tier"
                       else f"lead {lead.id} is {lead.status}: its tier cannot change now")
