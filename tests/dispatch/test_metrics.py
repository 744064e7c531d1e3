"""What the timeline writer counts, and that a rolled-back unit of work counts nothing."""
from __future__ import annotations

from dispatch import metrics, outbox
from dispatch.timeline import record
from service.core.db import sync_session


def test_each_event_counts_its_kind_and_the_metric_on_call_reads():
    assert metrics.of_event("expired", {}) == [(metrics.LEAD_EVENTS, ("expired",), 1),
                                               (metrics.OFFERS, ("expired",), 1)]
    assert metrics.of_event("closed", {"outcome": "dissuaded"})[1] == (metrics.LEADS_CLOSED, ("dissuaded",), 1)
    assert metrics.of_event("sms_failed", None)[1] == (metrics.SMS, ("failed",), 1)
    assert metrics.of_event("alarm_raised", {"kind": "first_call"})[1] == (metrics.ALARMS, ("first_call",), 1)
    assert metrics.of_event("transferred", {"to": None})[1] == (metrics.LEADS_TRANSFERRED, (), 1)
    assert metrics.of_event("signed", {}) == [(metrics.LEAD_EVENTS, ("signed",), 1)]


def test_a_rolled_back_unit_of_work_counts_nothing(sync_engine):
    closed = metrics.LEADS_CLOSED.labels("dissuaded")
    before = closed._value.get()
    with sync_session(sync_engine) as session:
        record(session, 1, "test", "closed", {"outcome": "dissuaded"})
        mark = outbox.of(session).mark()
        record(session, 1, "test", "expired", {})
        outbox.of(session).rewind(mark)  # its savepoint rolled back: the expiry is not counted
        assert [c[0] for c in outbox.of(session).counts] == [metrics.LEAD_EVENTS, metrics.LEADS_CLOSED]
        session.rollback()
        box = outbox.take(session)
    assert not box and box.counts == []
    metrics.apply(box.counts)
    assert closed._value.get() == before
