"""The step a lead is on, as a pure function: done steps stop counting, the soonest open one leads."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dispatch.shift.steps import LeadFacts, current_step

T0 = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)
RETRY = timedelta(minutes=10)


def step(**kw):
    c = current_step(LeadFacts(**{"status": "tiered", "signed": False, "needs_call": False, **kw}), RETRY)
    return c.step, c.due_at


def test_received_is_waiting_for_the_workers():
    assert step(status="received") == ("triage", None)


def test_unsigned_p0_is_on_sign_until_signed_then_on_its_first_call():
    d = {"sign": T0 + timedelta(minutes=2), "first_call": T0 + timedelta(minutes=5),
         "on_scene": T0 + timedelta(minutes=30)}
    assert step(needs_call=True, visit_status="offered", open_deadlines=d) == ("sign", d["sign"])
    signed = {k: v for k, v in d.items() if k != "sign"}  # met: gone from the open deadlines
    assert step(signed=True, needs_call=True, visit_status="offered", open_deadlines=signed) == \
        ("first_call", d["first_call"])
    called = {"on_scene": d["on_scene"]}
    assert step(signed=True, visit_status="offered", open_deadlines=called) == ("visit_offered", d["on_scene"])
    assert step(signed=True, visit_status="assigned", open_deadlines=called) == ("on_the_way", d["on_scene"])


def test_a_missed_step_still_counts_and_comes_first():
    d = {"first_call": T0 - timedelta(minutes=1), "sign": T0 + timedelta(minutes=1)}
    assert step(needs_call=True, open_deadlines=d) == ("first_call", d["first_call"])


def test_call_retry_is_due_after_the_last_failed_call_or_at_the_escalation_if_sooner():
    last = T0
    assert step(signed=True, needs_call=True, calls=1, last_failed_call_at=last) == ("call_retry", last + RETRY)
    soon = {"connected_call": T0 + timedelta(minutes=3)}
    assert step(signed=True, needs_call=True, calls=1, last_failed_call_at=last, open_deadlines=soon) == \
        ("call_retry", soon["connected_call"])


def test_on_scene_counts_to_the_next_check_in():
    d = {"checkin": T0 + timedelta(minutes=15)}
    assert step(signed=True, status="working", visit_status="arrived", open_deadlines=d) == ("on_scene", d["checkin"])


def test_a_visit_no_squad_could_take_is_the_centers():
    d = {"visit": T0 + timedelta(hours=24)}
    assert step(signed=True, status="working", visit_status="failed", open_deadlines=d) == ("center", d["visit"])


def test_closed_with_a_callback_due_is_on_its_callback():
    d = {"callback": T0}
    assert step(status="closed", signed=True, open_deadlines=d) == ("callback", T0)


def test_nothing_timed_left_is_working_without_a_timer():
    assert step(signed=True, status="working") == ("working", None)


def test_every_open_step_is_listed_current_first():
    d = {"sign": T0 + timedelta(minutes=9), "sms": T0 + timedelta(minutes=1)}
    c = current_step(LeadFacts("tiered", False, False, open_deadlines=d), RETRY)
    assert [s for s, _ in c.open_steps] == ["sms", "sign"]
