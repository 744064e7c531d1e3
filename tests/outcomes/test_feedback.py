"""Feedback to the sources (反馈): a source whose URL is down for a while receives every change
afterwards, in order, once, signed; after the last attempt a delivery is dead and the center can
send it again; a lead merged into another lead's work hears of that work."""
from __future__ import annotations

import orjson
import pytest
from sqlalchemy import text

from dispatch.outcomes import feedback
from service.core.db import sync_session
from service.core.settings import get_settings
from tests.ladder.helpers import lead_of, push
from tests.outcomes.receiver import Receiver
from tests.service.test_cli import quanzu
from workers import tasks

SOURCE = "national_platform"  # tests.factories.make_lead's


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def fast_backoff():
    """Retries in a fraction of a second, so a test waits for none (restored after)."""
    s = get_settings()
    saved = s.feedback_backoff_seconds, s.feedback_backoff_max_seconds, s.feedback_max_attempts
    s.feedback_backoff_seconds, s.feedback_backoff_max_seconds = 0.0, 0.0
    yield s
    s.feedback_backoff_seconds, s.feedback_backoff_max_seconds, s.feedback_max_attempts = saved


def _register(sync_engine, url: str) -> str:
    with sync_session(sync_engine) as session:
        key, _ = feedback.register(session, SOURCE, url, None)
        session.commit()
    return key


def _deliveries(sync_engine) -> list:
    with sync_engine.connect() as conn:
        return conn.execute(text("SELECT id, source, lead_id, event, status, attempts FROM feedback_delivery "
                                 "ORDER BY id")).all()


@pytest.fixture
def no_sources(sync_engine):
    with sync_engine.begin() as conn:
        conn.execute(text("TRUNCATE feedback_source, feedback_delivery"))


@pytest.mark.usefixtures("district", "clean", "no_sources")
async def test_a_source_down_for_a_while_gets_every_change_in_order_once(
        client, source_headers, commander, run_worker, sync_engine, receiver, fast_backoff, settings):
    key = quanzu("source-feedback", SOURCE, "--url", receiver.url).stdout.strip().splitlines()[-1]
    receiver.status = 503  # the platform is down
    lead_id = await push(client, source_headers, lead_of("P2"))
    await run_worker()
    assert (await client.post(f"/api/v1/leads/{lead_id}/sign", headers=commander)).status_code == 200
    await run_worker()  # its delivery is tried, refused, held back
    r = await client.post(f"/api/v1/leads/{lead_id}/calls", headers=commander,
                          json={"result": "connected", "outcome": "dissuaded"})
    assert r.status_code == 201, r.text
    lead = (await client.get(f"/api/v1/leads/{lead_id}", headers=commander)).json()
    r = await client.post("/api/v1/cases", headers=source_headers, json={
        "case_id": "FB-1", "reported_at": "2026-11-05T10:00:00+08:00", "fraud_type": "online_shopping",
        "victim": {"phone": lead["subject"]["phone"]}, "loss_cny": 1000})
    assert r.status_code == 201 and r.json()["post_warning_of"]["id"] == lead_id
    for _ in range(3):  # the jobs of the later changes run too, and hold back behind the first
        await run_worker()
        tasks.sweep_feedback()
    rows = _deliveries(sync_engine)
    assert [r.event for r in rows] == ["signed", "reached", "closed", "case_filed"]
    assert receiver.got == [] and receiver.refused >= 3
    assert rows[0].attempts >= 3 and all(r.status == "pending" for r in rows)
    assert all(r.attempts == 0 for r in rows[1:])  # never sent before the one ahead of them

    receiver.status = 200  # back up: the clock's sweep sends everything, in order
    tasks.sweep_feedback()
    tasks.sweep_feedback()  # and a second sweep sends nothing twice
    await run_worker()
    bodies = [orjson.loads(b) for _h, b in receiver.got]
    assert [b["event"] for b in bodies] == ["signed", "reached", "closed", "case_filed"]
    assert [b["delivery_id"] for b in bodies] == [r.id for r in rows]  # once each, in order
    assert all(b["source"] == SOURCE and b["lead_id"] == lead_id and b["source_id"] == lead["source_id"]
               for b in bodies)
    assert bodies[2]["data"]["outcome"] == "dissuaded" and bodies[3]["data"]["case_id"] == "FB-1"
    for headers, body in receiver.got:  # signed with the source's key
        assert feedback.verify(key, body, headers["X-Quanzu-Signature"])
        assert headers["X-Quanzu-Delivery"] == str(orjson.loads(body)["delivery_id"])
    assert not feedback.verify("another-key-0123456789", receiver.got[0][1], receiver.got[0][0]["X-Quanzu-Signature"])
    assert {r.status for r in _deliveries(sync_engine)} == {"delivered"}

    admin = await client.get("/api/v1/feedback/sources", headers=commander)
    assert admin.status_code == 403  # the sources' list is the admin's


@pytest.mark.usefixtures("district", "clean", "no_sources")
async def test_dead_letters_are_listed_and_sent_again(client, source_headers, commander, make_user, run_worker,
                                                      sync_engine, receiver, fast_backoff):
    fast_backoff.feedback_max_attempts = 2
    key = _register(sync_engine, receiver.url)
    receiver.status = 500
    lead_id = await push(client, source_headers, lead_of("P2"))
    await run_worker()
    assert (await client.post(f"/api/v1/leads/{lead_id}/sign", headers=commander)).status_code == 200
    await run_worker()
    tasks.sweep_feedback()
    dead = (await client.get("/api/v1/feedback/dead", headers=commander)).json()["items"]
    assert [(d["lead_id"], d["event"], d["attempts"]) for d in dead] == [(lead_id, "signed", 2)]
    assert "HTTP 500" in dead[0]["last_error"]
    admin = make_user("admin")
    listed = (await client.get("/api/v1/feedback/sources", headers=admin)).json()["items"]
    assert [(s["source"], s["url"], s["dead"], s["pending"]) for s in listed] == [(SOURCE, receiver.url, 1, 0)]
    assert "key" not in listed[0]

    receiver.status = 200
    r = await client.post(f"/api/v1/feedback/dead/{dead[0]['id']}/retry", headers=commander)
    assert r.status_code == 200 and r.json()["status"] == "pending"
    await run_worker()  # the retry's job
    assert [orjson.loads(b)["event"] for _h, b in receiver.got] == ["signed"]
    assert feedback.verify(key, receiver.got[0][1], receiver.got[0][0]["X-Quanzu-Signature"])
    assert (await client.get("/api/v1/feedback/dead", headers=commander)).json()["items"] == []
    again = await client.post(f"/api/v1/feedback/dead/{dead[0]['id']}/retry", headers=commander)
    assert again.status_code == 404


@pytest.mark.usefixtures("district", "clean", "no_sources")
async def test_a_lead_merged_into_another_hears_of_that_work(client, source_headers, commander, run_worker,
                                                            sync_engine, receiver, fast_backoff):
    _register(sync_engine, receiver.url)
    with sync_session(sync_engine) as session:  # the bank's monitoring too
        feedback.register(session, "bank_fund_monitor", receiver.url, None)
        session.commit()
    work = await push(client, source_headers, lead_of("P2"))
    joined = await push(client, source_headers, lead_of("P2", source="bank_fund_monitor"))
    await run_worker()
    with sync_engine.begin() as conn:  # as the person record links a second warning to open work
        conn.execute(text("UPDATE lead SET merged_into = :w WHERE id = :j"), {"w": work, "j": joined})
    assert (await client.post(f"/api/v1/leads/{work}/sign", headers=commander)).status_code == 200
    await run_worker()
    got = sorted((b["source"], b["lead_id"], b["work_lead_id"], b["event"])
                 for b in (orjson.loads(b) for _h, b in receiver.got))
    assert got == [("bank_fund_monitor", joined, work, "signed"), (SOURCE, work, work, "signed")]


def test_backoff_doubles_up_to_its_cap():
    assert [feedback.backoff(n, 10, 60).total_seconds() for n in (1, 2, 3, 4, 5)] == [10, 20, 40, 60, 60]
