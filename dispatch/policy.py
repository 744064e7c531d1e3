"""The center's policy (dispatch/policy.toml): tiers, rules, escalation and the ladder's knobs, as
data. Loaded once per process (`load_policy`) and handed down to whatever decides with it; its
`version` (a content hash) is recorded on every decision it made. The rule language is described
in the comments of policy.toml; `dispatch.triage.tiering` evaluates it."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request

from dispatch.enums import FraudType, Outcome, Residency, Response, Tier, WarningType


@dataclass(frozen=True, slots=True)
class LeadFacts:
    """What the policy may look at."""
    warning_type: str
    fraud_type: str
    risk_level: int
    residency: str
    in_jurisdiction: bool | None
    age: int | None
    ongoing: bool = False
    warned_within_7d: bool = False
    warned_30d: int = 0  # earlier warnings of the same person (phone or ID number) in the 30 days before


@dataclass(frozen=True, slots=True)
class TierDecision:
    tier: Tier
    response: list[Response]
    reasons: list[str]  # names of the rules that made the decision, in policy order
    deadlines: dict[str, datetime]  # absolute, counted from received_at
    escalation: list[Response] = field(default_factory=list)  # steps to add if the response fails
    policy_version: str = ""  # content hash of the policy that decided (Policy.version)

    def as_json(self) -> dict[str, Any]:
        return {"tier": self.tier.value, "response": [r.value for r in self.response],
                "reasons": list(self.reasons),
                "deadlines": {k: v.isoformat() for k, v in self.deadlines.items()},
                "escalation": [r.value for r in self.escalation],
                "policy_version": self.policy_version}



@dataclass(frozen=True, slots=True)
class Condition:
    fact: str  # a LeadFacts field, or "tier" (modifiers only)
    op: str  # in | is | gte | lte | gt | lt
    value: Any

    def holds(self, facts: LeadFacts, tier: Tier | None) -> bool:
        v = tier if self.fact == "tier" else getattr(facts, self.fact)
        if v is None:
            return False  # unknown (age, jurisdiction) never matches, whatever the test
        match self.op:
            case "in":
                return v in self.value
            case "is":
                return v == self.value
            case "gte":
                return v >= self.value
            case "lte":
                return v <= self.value
            case "gt":
                return v > self.value
            case _:
                return v < self.value


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    tier: Tier | None  # None: a modifier, checked after the tier is decided
    add_response: tuple[Response, ...]
    when: tuple[Condition, ...]
    switch: str | None = None
    enabled: bool = True

    def fires(self, facts: LeadFacts, tier: Tier | None = None) -> bool:
        return all(c.holds(facts, tier) for c in self.when)


@dataclass(frozen=True, slots=True)
class Deadline:
    name: str
    after: timedelta
    if_response: Response | None = None


@dataclass(frozen=True, slots=True)
class TierSpec:
    tier: Tier
    label: str
    response: tuple[Response, ...]
    escalation: tuple[Response, ...]
    deadlines: tuple[Deadline, ...]


@dataclass(frozen=True, slots=True)
class Escalation:
    failed_calls_to_visit: int
    no_connection_minutes: int
    no_connection_tiers: frozenset[Tier]
    offer_timeout_seconds: int


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
class Policy:
    tiers: dict[Tier, TierSpec]
    rules: tuple[Rule, ...]
    switches: dict[str, bool]
    escalation: Escalation
    default_tier: Tier
    source: str = "<policy>"
    ladder: Ladder = field(default_factory=Ladder)
    version: str = ""  # content hash of the parsed document: comments and layout do not change it
    shift: Shift = field(default_factory=Shift)
    contact: dict[Tier, Contact] = field(default_factory=dict)
    family: Family = field(default_factory=Family)
    stop_payment: StopPayment = field(default_factory=StopPayment)

    def deadline(self, tier: Tier | str, name: str) -> timedelta | None:
        """The duration of a named deadline of a tier, conditional or not (for escalations)."""
        return next((d.after for d in self.tiers[Tier(tier)].deadlines if d.name == name), None)

    def active(self, rule: Rule) -> bool:
        return rule.enabled and (rule.switch is None or self.switches[rule.switch])


# ---------------------------------------------------------------- loading
DEADLINE_NAMES = frozenset({"sign", "sms", "first_call", "visit", "on_scene", "callback"})
# Written by the ladder, not the policy: a connected call within escalation.no_connection_minutes.
LADDER_DEADLINES = frozenset({"connected_call"})
_DURATION = re.compile(r"(?:\d+[smhd])+", re.ASCII)
_DURATION_PART = re.compile(r"(\d+)([smhd])", re.ASCII)
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_CHOICES: dict[str, frozenset[str]] = {
    "warning_type": frozenset(WarningType), "fraud_type": frozenset(FraudType),
    "residency": frozenset(Residency), "tier": frozenset(Tier)}
_NUMBERS = ("risk_level", "age", "warned_30d")
_BOOLEANS = ("ongoing", "warned_within_7d", "in_jurisdiction")
_OPS = ("gte", "lte", "gt", "lt")


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


def _steps(v: object, key: str) -> tuple[Response, ...]:
    if not isinstance(v, list):
        raise _Bad(key, "must be a list of response steps")
    return tuple(Response(_choice(s, frozenset(Response), f"{key}[{i}]")) for i, s in enumerate(v))


def _tier_spec(tier: Tier, raw: object, key: str) -> TierSpec:
    t = _table(raw, key)
    _only(t, {"label", "response", "escalation", "deadlines"}, key)
    if "response" not in t:
        raise _Bad(f"{key}.response", "required")
    deadlines = []
    for name, v in _table(t.get("deadlines", {}), f"{key}.deadlines").items():
        dkey = f"{key}.deadlines.{name}"
        _choice(name, DEADLINE_NAMES, dkey)
        if isinstance(v, dict):
            _only(v, {"after", "if_response"}, dkey)
            cond = v.get("if_response")
            deadlines.append(Deadline(name, parse_duration(v.get("after"), f"{dkey}.after"),
                                      None if cond is None else
                                      Response(_choice(cond, frozenset(Response), f"{dkey}.if_response"))))
        else:
            deadlines.append(Deadline(name, parse_duration(v, dkey)))
    label = t.get("label", tier.value)
    if not isinstance(label, str):
        raise _Bad(f"{key}.label", "must be a string")
    return TierSpec(tier, label, _steps(t["response"], f"{key}.response"),
                    _steps(t.get("escalation", []), f"{key}.escalation"), tuple(deadlines))


def _condition(name: str, v: object, key: str) -> Condition:
    if name in _CHOICES:
        values = v if isinstance(v, list) else [v]
        return Condition(name, "in", frozenset(_choice(x, _CHOICES[name], f"{key}[{i}]") for i, x in enumerate(values)))
    if name in _BOOLEANS:
        if type(v) is not bool:
            raise _Bad(key, "must be true or false")
        return Condition(name, "is", v)
    if name in _NUMBERS:
        values = v if isinstance(v, list) else [v]
        if not all(type(x) is int for x in values):
            raise _Bad(key, "must be an integer or a list of integers")
        return Condition(name, "in", frozenset(values))
    field_, _, op = name.rpartition("_")
    if field_ in _NUMBERS and op in _OPS:
        if type(v) not in (int, float):
            raise _Bad(key, "must be a number")
        return Condition(field_, op, v)
    known = [*_CHOICES, *_BOOLEANS, *_NUMBERS, *(f"{f}_{o}" for f in _NUMBERS for o in _OPS)]
    raise _Bad(key, f"unknown condition (expected one of: {', '.join(known)})")


def _rule(raw: object, i: int, switches: dict[str, bool], names: set[str]) -> Rule:
    key = f"rules[{i}]"
    r = _table(raw, key)
    name = r.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise _Bad(f"{key}.name", "required, lower_snake_case")
    if name in names:
        raise _Bad(f"{key}.name", f"duplicate rule name {name!r}")
    names.add(name)
    key = f"rules.{name}"
    _only(r, {"name", "tier", "add_response", "when", "switch", "enabled", "description"}, key)
    tier = None if r.get("tier") is None else Tier(_choice(r["tier"], _CHOICES["tier"], f"{key}.tier"))
    add = _steps(r.get("add_response", []), f"{key}.add_response")
    if tier is None and not add:
        raise _Bad(key, "a rule must set a `tier` or `add_response` (or both)")
    when = _table(r.get("when", {}), f"{key}.when")
    if tier is not None and "tier" in when:
        raise _Bad(f"{key}.when.tier", "only modifiers (rules without `tier`) may test the tier")
    switch = r.get("switch")
    if switch is not None and switch not in switches:
        raise _Bad(f"{key}.switch", f"{switch!r} is not defined under [switches]")
    enabled = r.get("enabled", True)
    if type(enabled) is not bool:
        raise _Bad(f"{key}.enabled", "must be true or false")
    return Rule(name, tier, add, tuple(_condition(k, v, f"{key}.when.{k}") for k, v in when.items()),
                switch, enabled)


def parse_policy(doc: dict[str, Any], source: str = "<policy>") -> Policy:
    """A validated `Policy` from a parsed TOML document; ValueError names the bad key."""
    _only(doc, {"version", "default_tier", "switches", "escalation", "ladder", "tiers", "rules", "alarms", "field",
                "desk", "contact", "family", "stop_payment"}, "")
    if doc.get("version", 1) != 1:
        raise _Bad("version", "only version 1 is understood")
    switches = _table(doc.get("switches", {}), "switches")
    for k, v in switches.items():
        if type(v) is not bool:
            raise _Bad(f"switches.{k}", "must be true or false")
    raw_tiers = _table(doc.get("tiers"), "tiers")
    _only(raw_tiers, set(Tier), "tiers")
    missing = [t for t in Tier if t not in raw_tiers]
    if missing:
        raise _Bad(f"tiers.{missing[0]}", "required: every tier P0..P3 needs a response and deadlines")
    tiers = {t: _tier_spec(t, raw_tiers[t], f"tiers.{t}") for t in Tier}
    e = _table(doc.get("escalation", {}), "escalation")
    _only(e, {"failed_calls_to_visit", "no_connection_minutes", "no_connection_tiers", "offer_timeout_seconds"},
          "escalation")
    nct = e.get("no_connection_tiers", ["P0", "P1"])
    if not isinstance(nct, list):
        raise _Bad("escalation.no_connection_tiers", "must be a list of tiers")
    escalation = Escalation(
        failed_calls_to_visit=_int(e.get("failed_calls_to_visit", 3), "escalation.failed_calls_to_visit", 1),
        no_connection_minutes=_int(e.get("no_connection_minutes", 10), "escalation.no_connection_minutes", 1),
        no_connection_tiers=frozenset(Tier(_choice(t, _CHOICES["tier"], f"escalation.no_connection_tiers[{i}]"))
                                      for i, t in enumerate(nct)),
        offer_timeout_seconds=_int(e.get("offer_timeout_seconds", 60), "escalation.offer_timeout_seconds", 1))
    raw_rules = doc.get("rules", [])
    if not isinstance(raw_rules, list):
        raise _Bad("rules", "must be an array of tables ([[rules]])")
    names: set[str] = set()
    rules = tuple(_rule(r, i, switches, names) for i, r in enumerate(raw_rules))
    default = Tier(_choice(doc.get("default_tier", "P3"), _CHOICES["tier"], "default_tier"))
    return Policy(tiers, rules, dict(switches), escalation, default, source, _ladder(doc.get("ladder", {})),
                  policy_version(doc), _shift(doc), _contact(doc.get("contact", {})), _family(doc.get("family", {})),
                  _stop_payment(doc.get("stop_payment", {})))


def policy_version(doc: dict[str, Any]) -> str:
    """The content hash of a parsed policy: the same rules give the same version."""
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _tiers(v: object, key: str) -> frozenset[Tier]:
    if not isinstance(v, list):
        raise _Bad(key, "must be a list of tiers")
    return frozenset(Tier(_choice(t, _CHOICES["tier"], f"{key}[{i}]")) for i, t in enumerate(v))


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
        kw["already_defrauded_tier"] = Tier(_choice(d["already_defrauded_tier"], _CHOICES["tier"],
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
        tier = Tier(_choice(t, _CHOICES["tier"], key))
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


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in `path`, or the packaged dispatch/policy.toml."""
    if path is None:
        text, source = resources.files("dispatch").joinpath("policy.toml").read_text("utf-8"), "dispatch/policy.toml"
    else:
        text, source = Path(path).read_text("utf-8"), str(path)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ValueError(f"{source}: nested too deeply to be a policy") from None
    try:
        return parse_policy(doc, source)
    except _Bad as exc:
        raise ValueError(f"{source}: {exc}") from None


def current_policy(request: Request) -> Policy:
    """The policy this API process loaded at start (POLICY_FILE, else the packaged one)."""
    return request.app.state.policy


PolicyDep = Annotated[Policy, Depends(current_policy)]
