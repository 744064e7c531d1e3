"""The center's policy (dispatch/policy.toml): tiers, rules, escalation and the ladder's knobs, as
data. Loaded once per process (`load_policy`) and handed down to whatever decides with it; its
`version` (a content hash) is recorded on every decision it made. The rule language is described
in the comments of policy.toml; `dispatch.triage.tiering` evaluates it."""
from __future__ import annotations

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

from dispatch.enums import FraudType, Residency, Response, Tier, WarningType
from dispatch.policy_knobs import (  # noqa: F401 - the knobs' names are the policy's too
    ALARM_LEVELS,
    CALL_RESULTS,
    CONTACT_CHANNELS,
    LADDER_STEPS,
    CallbackRetry,
    Contact,
    Family,
    Ladder,
    Merge,
    Retention,
    Shift,
    StopPayment,
    Transfer,
    _Bad,
    _callback,
    _choice,
    _contact,
    _family,
    _int,
    _ladder,
    _merge,
    _only,
    _retention,
    _shift,
    _stop_payment,
    _table,
    _transfer,
    parse_duration,
)


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
    warned_30d: int = 0  # the person's earlier warnings (dispatch.person) in the 30 days before


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
        return self.test(tier if self.fact == "tier" else getattr(facts, self.fact))

    def test(self, v: Any) -> bool:
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
    retention: Retention = field(default_factory=Retention)
    transfer: Transfer = field(default_factory=Transfer)
    merge: Merge = field(default_factory=Merge)
    callback: CallbackRetry = field(default_factory=CallbackRetry)

    def deadline(self, tier: Tier | str, name: str) -> timedelta | None:
        """The duration of a named deadline of a tier, conditional or not (for escalations)."""
        return next((d.after for d in self.tiers[Tier(tier)].deadlines if d.name == name), None)

    def active(self, rule: Rule) -> bool:
        return rule.enabled and (rule.switch is None or self.switches[rule.switch])

    def urgent_lane(self, raw: dict) -> bool:
        """Whether a pushed lead (the wire's JSON, validated) may be tiered P0: an active P0 rule whose
        conditions on what the push says all hold (one on what only the worker knows — the place, the
        person's earlier warnings, the age from the ID number — counts as holding). Such a lead goes
        to the workers' urgent queue at once (workers.queues.AfterCommit); the worker still tiers it,
        and one that turns out less urgent is only worked sooner. A lane, not a tier."""
        subject = raw.get("subject")
        known = {"warning_type": raw.get("warning_type"), "fraud_type": raw.get("fraud_type"),
                 "risk_level": raw.get("risk_level"), "ongoing": raw.get("ongoing") is True,
                 "residency": subject.get("residency", "unknown") if isinstance(subject, dict) else "unknown"}
        return any(r.tier is Tier.P0 and self.active(r)
                   and all(c.fact not in known or c.test(known[c.fact]) for c in r.when) for r in self.rules)


# ---------------------------------------------------------------- loading
DEADLINE_NAMES = frozenset({"sign", "sms", "first_call", "visit", "on_scene", "callback"})
# Written by the ladder, not the policy: a connected call within escalation.no_connection_minutes.
LADDER_DEADLINES = frozenset({"connected_call"})
_CHOICES: dict[str, frozenset[str]] = {
    "warning_type": frozenset(WarningType), "fraud_type": frozenset(FraudType),
    "residency": frozenset(Residency), "tier": frozenset(Tier)}
_NUMBERS = ("risk_level", "age", "warned_30d")
_BOOLEANS = ("ongoing", "warned_within_7d", "in_jurisdiction")
_OPS = ("gte", "lte", "gt", "lt")


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
                "desk", "contact", "family", "stop_payment", "retention", "transfer", "merge", "callback"}, "")
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
                  _stop_payment(doc.get("stop_payment", {})), _retention(doc.get("retention", {})),
                  _transfer(doc.get("transfer", {})), _merge(doc.get("merge", {})), _callback(doc.get("callback", {})))


def policy_version(doc: dict[str, Any]) -> str:
    """The content hash of a parsed policy: the same rules give the same version."""
    canonical = json.dumps(doc, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


MAX_POLICY_BYTES = 256 * 1024  # the packaged policy is ~10 KB
MAX_POLICY_NESTING = 16  # arrays and inline tables; the packaged policy nests 3 deep


def _nesting(text: str) -> int:
    """The deepest nesting of arrays and inline tables (table headers count 1-2) in TOML text,
    strings and comments skipped: measured before parsing, so no text reaches the recursive parser
    nested deeper than any policy is."""
    depth = deepest = i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif c in "\"'":
            quote = text[i:i + 3] if text[i:i + 3] in ('"""', "'''") else c
            j = i + len(quote)
            while True:
                k = text.find(quote, j)
                if k < 0:
                    return deepest  # unterminated: the parser says so
                backslashes = len(text[j:k]) - len(text[j:k].rstrip("\\"))
                if quote[0] == '"' and backslashes % 2:
                    j = k + 1
                    continue
                break
            i = k + len(quote)
        else:
            if c in "[{":
                depth += 1
                deepest = max(deepest, depth)
            elif c in "]}":
                depth = max(0, depth - 1)
            i += 1
    return deepest


def read_policy_toml(text: str, source: str) -> dict[str, Any]:
    """TOML text → its document, bounded: too large or nested too deeply is a ValueError naming
    `source`, never a RecursionError."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise ValueError(f"{source}: larger than {MAX_POLICY_BYTES // 1024} KB: not a policy")
    if _nesting(text) > MAX_POLICY_NESTING:
        raise ValueError(f"{source}: nested too deeply to be a policy (more than {MAX_POLICY_NESTING} levels)")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # not reached within MAX_POLICY_NESTING; kept as the last guard
        raise ValueError(f"{source}: nested too deeply to be a policy") from None


def load_policy(path: str | Path | None = None) -> Policy:
    """The policy in `path`, or the packaged dispatch/policy.toml."""
    if path is None:
        text, source = resources.files("dispatch").joinpath("policy.toml").read_text("utf-8"), "dispatch/policy.toml"
    else:
        path = Path(path)
        if path.stat().st_size > MAX_POLICY_BYTES:
            raise ValueError(f"{path}: larger than {MAX_POLICY_BYTES // 1024} KB: not a policy")
        text, source = path.read_text("utf-8"), str(path)
    doc = read_policy_toml(text, source)
    try:
        return parse_policy(doc, source)
    except _Bad as exc:
        raise ValueError(f"{source}: {exc}") from None


def current_policy(request: Request) -> Policy:
    """The policy this API process loaded at start (POLICY_FILE, else the packaged one)."""
    return request.app.state.policy


PolicyDep = Annotated[Policy, Depends(current_policy)]
