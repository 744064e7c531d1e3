"""The tier policy: default rules, the district rule, deadlines, custom and broken files."""
from __future__ import annotations

import dataclasses
import json
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from dispatch.enums import Response, Tier
from dispatch.intake.validation import validate_lead
from dispatch.policy import LeadFacts, Policy, load_policy
from dispatch.triage.tiering import age_on, tier_lead
from tests.data import ROOT, shared_file

PACKAGED = (ROOT / "dispatch/policy.toml").read_text("utf-8")
CST = timezone(timedelta(hours=8))
AT = datetime(2026, 10, 1, 9, 0, tzinfo=CST)

sms, call, visit = Response.sms, Response.call, Response.visit


def facts_for(lead, *, in_jurisdiction: bool | None, on: date,
              warned_within_7d: bool = False) -> LeadFacts:
    """The policy's view of a validated lead; `on` is the (local) day it was received."""
    s = lead.subject
    return LeadFacts(warning_type=lead.warning_type, fraud_type=lead.fraud_type, risk_level=lead.risk_level,
                     residency=s.residency, in_jurisdiction=in_jurisdiction, age=age_on(s.id_number, on),
                     ongoing=lead.ongoing, warned_within_7d=warned_within_7d)



@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy()


def facts(**kw: object) -> LeadFacts:
    """A low-risk nonlocal adult unless told otherwise: nothing but `risk3` fires."""
    base = dict(warning_type="fraud_sms", fraud_type="online_shopping", risk_level=3, residency="nonlocal",
                in_jurisdiction=True, age=35)
    return LeadFacts(**{**base, **kw})  # type: ignore[arg-type]


def write_policy(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "policy.toml"
    p.write_text(text, encoding="utf-8")
    return p


# ---------------------------------------------------------------- default rules
@pytest.mark.parametrize("kw, tier, reasons, response", [
    (dict(warning_type="fund_transfer", risk_level=1), Tier.P0, ["fund_transfer_warning"], [call, visit]),
    (dict(warning_type="fraud_call", risk_level=1, ongoing=True), Tier.P0, ["risk1_contact_ongoing"], [call, visit]),
    (dict(warning_type="fraud_call", risk_level=1), Tier.P1, ["risk1"], [call]),
    (dict(risk_level=2, fraud_type="impersonate_authority"), Tier.P1, ["risk2_high_risk_type"], [call]),
    (dict(risk_level=2, fraud_type="fake_loan"), Tier.P1, ["risk2_high_risk_type"], [call]),
    (dict(age=60), Tier.P1, ["elderly_subject"], [call]),
    (dict(risk_level=2), Tier.P2, ["risk2"], [sms, call]),
    (dict(warned_within_7d=True), Tier.P2, ["repeat_warning_7d"], [sms, call]),
    (dict(), Tier.P3, ["risk3"], [sms]),
    (dict(age=59), Tier.P3, ["risk3"], [sms]),
    (dict(age=None), Tier.P3, ["risk3"], [sms]),
    (dict(risk_level=2, warned_within_7d=True), Tier.P2, ["risk2"], [sms, call]),  # repeat applies to risk 3
])
def test_default_rules(policy: Policy, kw: dict, tier: Tier, reasons: list[str], response: list[Response]) -> None:
    d = tier_lead(facts(**kw), policy, AT)
    assert (d.tier, d.reasons, d.response) == (tier, reasons, response)


def test_fund_transfer_beats_elderly(policy: Policy) -> None:
    d = tier_lead(facts(warning_type="fund_transfer", risk_level=1, age=72, residency="resident"), policy, AT)
    assert d.tier is Tier.P0 and d.reasons == ["fund_transfer_warning"]
    both = tier_lead(facts(warning_type="fund_transfer", risk_level=1, ongoing=True), policy, AT)
    assert both.reasons == ["fund_transfer_warning", "risk1_contact_ongoing"]  # every P0 rule, policy order


def test_elderly_beats_low_risk_and_all_p1_rules_are_reasons(policy: Policy) -> None:
    d = tier_lead(facts(risk_level=2, fraud_type="fake_investment", age=66), policy, AT)
    assert d.tier is Tier.P1 and d.reasons == ["risk2_high_risk_type", "elderly_subject"]


@pytest.mark.parametrize("residency", ["resident", "worker", "transient", "nonlocal", "unknown"])
@pytest.mark.parametrize("in_jurisdiction", [True, False, None])
@pytest.mark.parametrize("kw, tier", [
    (dict(warning_type="fund_transfer", risk_level=1), Tier.P0),
    (dict(risk_level=1, warning_type="fraud_call"), Tier.P1),
    (dict(risk_level=2), Tier.P2),
    (dict(risk_level=3), Tier.P3),
])
def test_district_face_to_face(policy: Policy, residency: str, in_jurisdiction: bool | None,
                               kw: dict, tier: Tier) -> None:
    d = tier_lead(facts(residency=residency, in_jurisdiction=in_jurisdiction, **kw), policy, AT)
    raised = tier in (Tier.P1, Tier.P2) and in_jurisdiction is True and residency in ("resident", "worker", "transient")
    assert d.tier is tier
    assert ("district_face_to_face" in d.reasons) is raised
    assert (visit in d.response) is (raised or tier is Tier.P0)
    assert ("visit" in d.deadlines) is raised  # P0 has on_scene instead
    assert d.escalation == ([visit] if tier is Tier.P1 and not raised else [])


def test_district_rule_reason_comes_last(policy: Policy) -> None:
    d = tier_lead(facts(risk_level=2, residency="worker"), policy, AT)
    assert d.reasons == ["risk2", "district_face_to_face"] and d.response == [sms, call, visit]


# ---------------------------------------------------------------- deadlines and output
def test_deadlines_count_from_received_at(policy: Policy) -> None:
    p0 = tier_lead(facts(warning_type="fund_transfer", risk_level=1), policy, AT)
    assert p0.deadlines == {"sign": AT + timedelta(minutes=2), "first_call": AT + timedelta(minutes=5),
                            "on_scene": AT + timedelta(minutes=30)}
    p1 = tier_lead(facts(risk_level=1, residency="resident"), policy, AT)
    assert p1.deadlines == {"sign": AT + timedelta(minutes=5), "first_call": AT + timedelta(minutes=15),
                            "visit": AT + timedelta(hours=24)}
    p2 = tier_lead(facts(risk_level=2, residency="resident"), policy, AT)
    assert p2.deadlines == {"sign": AT + timedelta(minutes=30), "first_call": AT + timedelta(hours=4),
                            "visit": AT + timedelta(hours=72)}
    p3 = tier_lead(facts(), policy, AT)
    assert p3.deadlines == {"sign": AT + timedelta(hours=2), "sms": AT + timedelta(hours=1)}
    assert policy.deadline(Tier.P1, "visit") == timedelta(hours=24) and policy.deadline("P3", "visit") is None


def test_as_json(policy: Policy) -> None:
    d = tier_lead(facts(risk_level=2, residency="resident"), policy, AT)
    assert d.as_json() == {
        "tier": "P2", "response": ["sms", "call", "visit"], "reasons": ["risk2", "district_face_to_face"],
        "deadlines": {"sign": "2026-10-01T09:30:00+08:00", "first_call": "2026-10-01T13:00:00+08:00",
                      "visit": "2026-10-04T09:00:00+08:00"},
        "escalation": [], "policy_version": policy.version}
    assert len(policy.version) == 12
    json.dumps(d.as_json())


def test_escalation_parameters(policy: Policy) -> None:
    e = policy.escalation
    assert (e.failed_calls_to_visit, e.no_connection_minutes, e.offer_timeout_seconds) == (3, 10, 60)
    assert e.no_connection_tiers == {Tier.P0, Tier.P1}
    assert policy.switches == {"district_face_to_face": True}
    assert load_policy() == policy


@pytest.mark.parametrize("idn, on, age", [
    ("11010519491231002X", date(2009, 12, 30), 59),
    ("11010519491231002X", date(2009, 12, 31), 60),
    ("110105491231002", date(2010, 1, 1), 60),
    ("370299198904085680", date(2026, 10, 1), 37),  # a bad check digit still carries the birth date
    ("3702991989040856", date(2026, 10, 1), None),
    (None, date(2026, 10, 1), None),
    ("370299212004085688", date(2026, 10, 1), None),
])
def test_age_on(idn: str | None, on: date, age: int | None) -> None:
    assert age_on(idn, on) == age


# ---------------------------------------------------------------- custom and broken policies
def test_custom_policy_changes_the_result(tmp_path: Path, policy: Policy) -> None:
    elder = facts(age=62)
    assert tier_lead(elder, policy, AT).tier is Tier.P1
    custom = load_policy(write_policy(tmp_path, PACKAGED.replace("age_gte = 60", "age_gte = 65")
                                      .replace('first_call = "15m"', 'first_call = "10m"')))
    assert tier_lead(elder, custom, AT).tier is Tier.P3
    assert tier_lead(facts(age=65), custom, AT).tier is Tier.P1
    assert tier_lead(facts(risk_level=1), custom, AT).deadlines["first_call"] == AT + timedelta(minutes=10)


def test_switch_off_district_rule(tmp_path: Path) -> None:
    off = load_policy(write_policy(tmp_path, PACKAGED.replace("district_face_to_face = true",
                                                              "district_face_to_face = false")))
    d = tier_lead(facts(risk_level=2, residency="resident"), off, AT)
    assert d.response == [sms, call] and d.reasons == ["risk2"]


def test_new_fraud_type_in_a_rule(tmp_path: Path) -> None:
    text = PACKAGED.replace('fraud_type = ["fake_investment",', 'fraud_type = ["order_brushing", "fake_investment",')
    custom = load_policy(write_policy(tmp_path, text))
    assert tier_lead(facts(risk_level=2, fraud_type="order_brushing"), custom, AT).tier is Tier.P1


def test_no_rule_fires_gives_default_tier(tmp_path: Path) -> None:
    text = PACKAGED.replace('name = "risk3"\ntier = "P3"\nwhen = { risk_level = [3] }',
                            'name = "risk3"\ntier = "P3"\nenabled = false\nwhen = { risk_level = [3] }')
    assert text != PACKAGED
    d = tier_lead(facts(), load_policy(write_policy(tmp_path, text)), AT)
    assert d.tier is Tier.P3 and d.reasons == ["default_tier"]


@pytest.mark.parametrize("old, new, key", [
    ('first_call = "15m"', 'first_call = "15 minutes"', "tiers.P1.deadlines.first_call"),
    ('sign = "2h"', 'sign = 2', "tiers.P3.deadlines.sign"),
    ('sms = "1h"', 'smss = "1h"', "tiers.P3.deadlines.smss"),
    ("age_gte = 60", "age_over = 60", "rules.elderly_subject.when.age_over"),
    ("age_gte = 60", 'age_gte = "sixty"', "rules.elderly_subject.when.age_gte"),
    ('"fake_loan", "impersonate_customer_service"', '"fake_lone"',
     "rules.risk2_high_risk_type.when.fraud_type[2]"),
    ('name = "risk2"\ntier = "P2"', 'name = "risk2"\ntier = "P5"', "rules.risk2.tier"),
    ('response = ["sms"]', 'response = ["fax"]', "tiers.P3.response[0]"),
    ('switch = "district_face_to_face"', 'switch = "district_face2face"', "rules.district_face_to_face.switch"),
    ("failed_calls_to_visit = 3", "failed_calls_to_visit = -1", "escalation.failed_calls_to_visit"),
    ('name = "risk3"', 'name = "risk2"', "rules[7].name"),
    ('[tiers.P3]\nlabel = "low"', '[tiers.P4]\nlabel = "low"', "tiers.P4"),
    ("version = 1", "version = 1\ncolour = 'red'", "colour"),
])
def test_broken_policy_names_the_key(tmp_path: Path, old: str, new: str, key: str) -> None:
    assert old in PACKAGED
    with pytest.raises(ValueError) as err:
        load_policy(write_policy(tmp_path, PACKAGED.replace(old, new, 1)))
    assert repr(key) in str(err.value), str(err.value)


def test_not_toml(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not valid TOML"):
        load_policy(write_policy(tmp_path, "[tiers\n"))


def test_missing_tier(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'tiers.P3'"):
        start, end = PACKAGED.index("[tiers.P3]"), PACKAGED.index("[[rules]]")
        load_policy(write_policy(tmp_path, PACKAGED[:start] + PACKAGED[end:]))


# ---------------------------------------------------------------- the sample district
def test_tier_the_district(policy: Policy) -> None:
    with shared_file("leads.jsonl").open(encoding="utf-8") as f, \
            shared_file("leads_truth.jsonl").open(encoding="utf-8") as g:
        pairs = [(json.loads(a), json.loads(b)) for a, b in zip(f, g, strict=True)]
    last_warned: dict[str, datetime] = {}
    tiers: Counter[Tier] = Counter()
    reasons: Counter[str] = Counter()
    for raw, truth in pairs:
        if truth["verdict"] != "accept":
            continue
        lead = validate_lead(raw).lead
        assert lead is not None
        at = lead.pushed_at
        phone = lead.subject.phone
        recent = phone in last_warned and at - last_warned[phone] <= timedelta(days=7)
        if phone:
            last_warned[phone] = at
        fx = facts_for(lead, in_jurisdiction=truth["in_jurisdiction"], on=at.astimezone(CST).date(),
                       warned_within_7d=recent)
        d = tier_lead(fx, policy, at)
        tiers[d.tier] += 1
        reasons.update(d.reasons)
        if fx.warning_type == "fund_transfer":
            assert d.tier is Tier.P0 and "fund_transfer_warning" in d.reasons
        if d.tier in (Tier.P1, Tier.P2) and fx.in_jurisdiction and fx.residency in ("resident", "worker", "transient"):
            assert visit in d.response
        if fx.age is not None and fx.age >= 60:
            assert d.tier in (Tier.P0, Tier.P1)
    total = sum(tiers.values())
    print(f"\ntiers over {total} accepted leads: {dict(sorted(tiers.items()))}\nreasons: {dict(reasons)}")
    assert set(tiers) == set(Tier)
    assert all(n >= total * 0.02 for n in tiers.values())
    assert reasons["repeat_warning_7d"] > 0 and reasons["district_face_to_face"] > 0


def test_facts_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        facts().age = 1  # type: ignore[misc]
