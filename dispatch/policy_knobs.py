"""The policy's knobs beyond the tier rules (policy.toml `[ladder]`, `[alarms]`, `[field]`, `[desk]`,
`[contact.*]`, `[family]`, `[stop_payment]`, `[retention]`, `[transfer]`, `[merge]`, `[callback]`): each a frozen dataclass with its defaults, and its
parser, which names the bad key. `dispatch.policy` builds the whole `Policy` from them and the
tier rules."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from dispatch.enums import Outcome, Tier

_TIERS = frozenset(Tier)
CALL_RESULTS = ("connected", "no_answer", "busy", "powered_off", "rejected", "invalid_number")
LADDER_STEPS = ("visit", "center")


@dataclass(frozen=True, slots=True)
class Ladder:
    """The response ladder's knobs (policy.toml `[ladder]`); every step records the rule that fired."""
    failed_results: frozenset[str] = frozenset({"no_answer", "busy", "powered_off", "rejected"})
    invalid_number_placed: str = "visit"  # visit | center
    invalid_number_unplaced: str = "center"
    refused_by_phone: str = "visit"  # a connected call that did not dissuade
    close_on_dissuaded: frozenset[Tier] = frozenset({Tier.P1, Tier.P2, Tier.P3})
    already_defrauded_tier: Tier = Tier.P0
    sms_failed_to_call: frozenset[Tier] = frozenset({Tier.P3})
    sms_failed_call_within: timedelta = timedelta(hours=4)
    visit_within: timedelta = timedelta(hours=24)  # an escalated visit, when the tier names no visit deadline
    callback_after: timedelta = timedelta(days=3)
    callback_after_tier: dict[Tier, timedelta] = field(default_factory=lambda: {Tier.P0: timedelta(days=1)})
    callback_outcomes: frozenset[str] = frozenset({"dissuaded", "already_defrauded", "refused", "not_reached"})
    # A busy line on an urgent lead: the scammer may be on the phone with the person right now — the
    # visit starts at once and the family is told, without waiting for failed_calls_to_visit.
    busy_line_to_visit: frozenset[Tier] = frozenset({Tier.P0, Tier.P1})

    def callback_delay(self, tier: Tier | str | None) -> timedelta:
        return self.callback_after_tier.get(Tier(tier), self.callback_after) if tier else self.callback_after


ALARM_LEVELS = ("duty_officer", "duty_commander", "center_head")


@dataclass(frozen=True, slots=True)
class Shift:
    """The shift's knobs (policy.toml `[alarms]`, `[field]`, `[desk]`)."""
    alarm_levels: tuple[str, ...] = ALARM_LEVELS  # level 1, 2, 3 ... in order
    escalate_after: timedelta = timedelta(minutes=5)  # unacknowledged this long → the next level
    escalate_after_tier: dict[Tier, timedelta] = field(default_factory=lambda: {Tier.P0: timedelta(minutes=2)})
    checkin_every: timedelta = timedelta(minutes=15)  # a squad on scene checks in this often
    backup_when_late: bool = True  # accepted, not on scene by its deadline → the next squad offered as backup
    claim_for: timedelta = timedelta(minutes=3)  # the desk's claim on the lead an operator is calling
    call_retry_after: timedelta = timedelta(minutes=10)  # the next call after a failed one

    def escalation_delay(self, tier: Tier | str | None) -> timedelta:
        return self.escalate_after_tier.get(Tier(tier), self.escalate_after) if tier else self.escalate_after


@dataclass(frozen=True, slots=True)
class Contact:
    """Contact that persists (policy.toml `[contact.P1]` …): every `every`, the `channels` in turn
    (flash_sms, sms, robot_call); after `operator_after` rounds unanswered an operator calls too;
    after `until` a visit. It stops the moment the person is reached (a connected call, a reply)."""
    every: timedelta
    channels: tuple[str, ...]
    operator_after: int
    until: timedelta


CONTACT_CHANNELS = ("flash_sms", "sms", "robot_call")


@dataclass(frozen=True, slots=True)
class Family:
    """保护圈: up to `max_contacts` relatives per person, told by SMS (the SMS templates' `[family]`
    text) when the ladder hits one of `notify_on` (rules: busy_line, refused_by_phone, already_defrauded, …)."""
    max_contacts: int = 3
    notify_on: frozenset[str] = frozenset({"busy_line", "refused_by_phone", "already_defrauded"})


@dataclass(frozen=True, slots=True)
class StopPayment:
    """止付 as work: a request to the bank is valid `valid_for` (48 h), at most `max_requests` per
    lead (the national rule: twice); a bank that has not answered within `answer_within` is an alarm."""
    valid_for: timedelta = timedelta(hours=48)
    max_requests: int = 2
    answer_within: timedelta = timedelta(hours=2)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long personal data is kept (PIPL): `leads` after a lead closes or is handed over, `cases`
    after a case is reported; then `quanzu purge` blanks it (dispatch/retention.py)."""
    leads: timedelta = timedelta(days=3 * 365)
    cases: timedelta = timedelta(days=5 * 365)


@dataclass(frozen=True, slots=True)
class Transfer:
    """Handovers in the city (policy.toml `[transfer]`): a district receiving a lead must accept it
    within `accept_within`, else it goes back to the city center with an alarm; with `review`, an
    operator's transfer waits for a commander of the sending district first. A lead placed outside
    the city of an `urgent_tiers` tier gets its warning SMS and first call here before it leaves."""
    accept_within: timedelta = timedelta(minutes=15)
    review: bool = False
    urgent_tiers: frozenset[Tier] = frozenset({Tier.P0, Tier.P1})


@dataclass(frozen=True, slots=True)
class Merge:
    """一次预警一件事 (policy.toml `[merge]`): a warning about a person whose work is open, pushed within
    `window` of it, with the same fraud type or a tier at least as urgent, joins that work."""
    enabled: bool = True
    window: timedelta = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class CallbackRetry:
    """回访 not reached (policy.toml `[callback]`): tried again `retry_after` later, `max_attempts` in all."""
    retry_after: timedelta = timedelta(days=1)
    max_attempts: int = 3


_DURATION = re.compile(r"(?:\d+[smhd])+", re.ASCII)
_DURATION_PART = re.compile(r"(\d+)([smhd])", re.ASCII)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
class _Bad(ValueError):
    def __init__(self, key: str, problem: str):
        super().__init__(f"policy key {key!r}: {problem}")


def parse_duration(text: object, key: str) -> timedelta:
    if not isinstance(text, str) or not _DURATION.fullmatch(text.strip()):
        raise _Bad(key, f"{text!r} is not a duration like '2m', '4h', '72h' or '1h30m'")
    seconds = sum(int(n) * _UNIT[u] for n, u in _DURATION_PART.findall(text))
    if seconds <= 0:
        raise _Bad(key, "a deadline must be longer than zero")
    return timedelta(seconds=seconds)


def _table(v: object, key: str) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise _Bad(key, "must be a table")
    return v


def _only(d: dict[str, Any], allowed: set[str], key: str) -> None:
    for k in d:
        if k not in allowed:
            raise _Bad(f"{key}.{k}" if key else k, f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _int(v: object, key: str, minimum: int = 0) -> int:
    if type(v) is not int or v < minimum:
        raise _Bad(key, f"must be an integer ≥ {minimum}")
    return v


def _choice(v: object, allowed: frozenset[str], key: str) -> str:
    if not isinstance(v, str) or v not in allowed:
        raise _Bad(key, f"{v!r} is not one of: {', '.join(sorted(allowed))}")
    return v


def _tiers(v: object, key: str) -> frozenset[Tier]:
    if not isinstance(v, list):
        raise _Bad(key, "must be a list of tiers")
    return frozenset(Tier(_choice(t, _TIERS, f"{key}[{i}]")) for i, t in enumerate(v))


def _ladder(raw: object) -> Ladder:
    d, base = _table(raw, "ladder"), Ladder()
    _only(d, {"failed_results", "invalid_number_placed", "invalid_number_unplaced", "refused_by_phone",
              "close_on_dissuaded", "already_defrauded_tier", "sms_failed_to_call", "sms_failed_call_within",
              "visit_within", "callback_after", "callback_outcomes", "busy_line_to_visit"}, "ladder")
    kw: dict[str, Any] = {}
    if "failed_results" in d:
        v = d["failed_results"]
        if not isinstance(v, list):
            raise _Bad("ladder.failed_results", "must be a list of call results")
        kw["failed_results"] = frozenset(_choice(x, frozenset(CALL_RESULTS) - {"connected", "invalid_number"},
                                                 f"ladder.failed_results[{i}]") for i, x in enumerate(v))
    for name in ("invalid_number_placed", "invalid_number_unplaced", "refused_by_phone"):
        if name in d:
            kw[name] = _choice(d[name], frozenset(LADDER_STEPS), f"ladder.{name}")
    for name in ("close_on_dissuaded", "sms_failed_to_call", "busy_line_to_visit"):
        if name in d:
            kw[name] = _tiers(d[name], f"ladder.{name}")
    if "already_defrauded_tier" in d:
        kw["already_defrauded_tier"] = Tier(_choice(d["already_defrauded_tier"], _TIERS,
                                                    "ladder.already_defrauded_tier"))
    for name in ("sms_failed_call_within", "visit_within"):
        if name in d:
            kw[name] = parse_duration(d[name], f"ladder.{name}")
    if "callback_after" in d:
        v = d["callback_after"]
        if isinstance(v, dict):
            _only(v, {"default", *Tier}, "ladder.callback_after")
            kw["callback_after"] = parse_duration(v.get("default", "3d"), "ladder.callback_after.default")
            kw["callback_after_tier"] = {Tier(t): parse_duration(x, f"ladder.callback_after.{t}")
                                         for t, x in v.items() if t != "default"}
        else:
            kw["callback_after"] = parse_duration(v, "ladder.callback_after")
            kw["callback_after_tier"] = {}
    if "callback_outcomes" in d:
        v = d["callback_outcomes"]
        if not isinstance(v, list):
            raise _Bad("ladder.callback_outcomes", "must be a list of outcomes")
        kw["callback_outcomes"] = frozenset(_choice(x, frozenset(Outcome), f"ladder.callback_outcomes[{i}]")
                                            for i, x in enumerate(v))
    return dataclasses.replace(base, **kw)


def _per_tier(v: object, key: str, default: timedelta) -> tuple[timedelta, dict[Tier, timedelta]]:
    """`"5m"` or `{ default = "5m", P0 = "2m" }`."""
    if isinstance(v, dict):
        _only(v, {"default", *Tier}, key)
        base = parse_duration(v["default"], f"{key}.default") if "default" in v else default
        return base, {Tier(t): parse_duration(x, f"{key}.{t}") for t, x in v.items() if t != "default"}
    return parse_duration(v, key), {}


def _shift(doc: dict[str, Any]) -> Shift:
    a, f, d = (_table(doc.get(k, {}), k) for k in ("alarms", "field", "desk"))
    _only(a, {"levels", "escalate_after"}, "alarms")
    _only(f, {"checkin_every", "backup_when_late"}, "field")
    _only(d, {"claim_for", "call_retry_after"}, "desk")
    base, kw = Shift(), {}
    if "levels" in a:
        levels = a["levels"]
        if not isinstance(levels, list) or not levels or not all(
                isinstance(x, str) and re.fullmatch(r"[a-z][a-z0-9_]*", x) for x in levels):
            raise _Bad("alarms.levels", "must be a non-empty list of lower_snake_case names (level 1 first)")
        kw["alarm_levels"] = tuple(levels)
    if "escalate_after" in a:
        kw["escalate_after"], kw["escalate_after_tier"] = _per_tier(a["escalate_after"], "alarms.escalate_after",
                                                                    base.escalate_after)
    for name, table, key in (("checkin_every", f, "field"), ("claim_for", d, "desk"),
                             ("call_retry_after", d, "desk")):
        if name in table:
            kw[name] = parse_duration(table[name], f"{key}.{name}")
    if "backup_when_late" in f:
        if type(f["backup_when_late"]) is not bool:
            raise _Bad("field.backup_when_late", "must be true or false")
        kw["backup_when_late"] = f["backup_when_late"]
    return dataclasses.replace(base, **kw)


def _contact(raw: object) -> dict[Tier, Contact]:
    out = {}
    for t, v in _table(raw, "contact").items():
        key = f"contact.{t}"
        tier = Tier(_choice(t, _TIERS, key))
        c = _table(v, key)
        _only(c, {"every", "channels", "operator_after", "until"}, key)
        channels = c.get("channels", ["flash_sms"])
        if not isinstance(channels, list) or not channels:
            raise _Bad(f"{key}.channels", f"a non-empty list of: {', '.join(CONTACT_CHANNELS)}")
        out[tier] = Contact(parse_duration(c.get("every"), f"{key}.every"),
                            tuple(_choice(x, frozenset(CONTACT_CHANNELS), f"{key}.channels[{i}]")
                                  for i, x in enumerate(channels)),
                            _int(c.get("operator_after", 2), f"{key}.operator_after", 0),
                            parse_duration(c.get("until"), f"{key}.until"))
    return out


def _family(raw: object) -> Family:
    d, base = _table(raw, "family"), Family()
    _only(d, {"max_contacts", "notify_on"}, "family")
    kw: dict[str, Any] = {}
    if "max_contacts" in d:
        kw["max_contacts"] = _int(d["max_contacts"], "family.max_contacts", 1)
    if "notify_on" in d:
        v = d["notify_on"]
        if not isinstance(v, list) or not all(isinstance(x, str) and re.fullmatch(r"[a-z][a-z0-9_]*", x) for x in v):
            raise _Bad("family.notify_on", "a list of ladder rule names (busy_line, refused_by_phone, ...)")
        kw["notify_on"] = frozenset(v)
    return dataclasses.replace(base, **kw)


def _stop_payment(raw: object) -> StopPayment:
    d, base = _table(raw, "stop_payment"), StopPayment()
    _only(d, {"valid_for", "max_requests", "answer_within"}, "stop_payment")
    kw: dict[str, Any] = {}
    for name in ("valid_for", "answer_within"):
        if name in d:
            kw[name] = parse_duration(d[name], f"stop_payment.{name}")
    if "max_requests" in d:
        kw["max_requests"] = _int(d["max_requests"], "stop_payment.max_requests", 1)
    return dataclasses.replace(base, **kw)


def _retention(raw: object) -> Retention:
    d = _table(raw, "retention")
    _only(d, {"leads", "cases"}, "retention")
    kw = {name: parse_duration(d[name], f"retention.{name}") for name in ("leads", "cases") if name in d}
    for name, v in kw.items():
        if v < timedelta(days=1):
            raise _Bad(f"retention.{name}", "at least a day (e.g. \"1095d\")")
    return dataclasses.replace(Retention(), **kw)


def _transfer(raw: object) -> Transfer:
    d, base = _table(raw, "transfer"), Transfer()
    _only(d, {"accept_within", "review", "urgent_tiers"}, "transfer")
    kw: dict[str, Any] = {}
    if "accept_within" in d:
        kw["accept_within"] = parse_duration(d["accept_within"], "transfer.accept_within")
    if "review" in d:
        if type(d["review"]) is not bool:
            raise _Bad("transfer.review", "must be true or false")
        kw["review"] = d["review"]
    if "urgent_tiers" in d:
        kw["urgent_tiers"] = _tiers(d["urgent_tiers"], "transfer.urgent_tiers")
    return dataclasses.replace(base, **kw)


def _merge(raw: object) -> Merge:
    d = _table(raw, "merge")
    _only(d, {"enabled", "window"}, "merge")
    kw: dict[str, Any] = {}
    if "enabled" in d:
        if type(d["enabled"]) is not bool:
            raise _Bad("merge.enabled", "must be true or false")
        kw["enabled"] = d["enabled"]
    if "window" in d:
        kw["window"] = parse_duration(d["window"], "merge.window")
    return dataclasses.replace(Merge(), **kw)


def _callback(raw: object) -> CallbackRetry:
    d = _table(raw, "callback")
    _only(d, {"retry_after", "max_attempts"}, "callback")
    kw: dict[str, Any] = {}
    if "retry_after" in d:
        kw["retry_after"] = parse_duration(d["retry_after"], "callback.retry_after")
    if "max_attempts" in d:
        kw["max_attempts"] = _int(d["max_attempts"], "callback.max_attempts", 1)
    return dataclasses.replace(CallbackRetry(), **kw)
