"""Nothing lost: leads pushed while no worker runs, or whose jobs Redis lost, still get worked."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from redis import Redis
from sqlalchemy import func, select

from dispatch.models import Lead
from tests.factories import make_lead
from tests.waiting import until
from workers.queues import enqueued_key
from workers.tasks import reconcile

pytestmark = pytest.mark.usefixtures("district", "clean")


def statuses(sync_engine) -> dict[str, int]:
    with sync_engine.connect() as conn:
        return dict(conn.execute(select(Lead.status, func.count()).group_by(Lead.status)).all())


async def _push(client, headers, n: int, **kw) -> None:
    r = await client.post("/api/v1/leads/batch", json={"leads": [make_lead(**kw) for _ in range(n)]},
                          headers=headers)
    assert r.status_code == 200


async def test_jobs_wait_in_redis_for_a_worker_started_later(app, client, source_headers, sync_engine,
                                                             run_worker):
    for _ in range(10):
        await client.post("/api/v1/leads", json=make_lead(), headers=source_headers)
    await app.state.after_commit.drain()
    assert statuses(sync_engine) == {"received": 10}  # no worker yet: nothing moved
    await run_worker()
    assert statuses(sync_engine) == {"tiered": 10}


async def test_reconciler_resends_leads_whose_jobs_were_lost(app, client, source_headers, sync_engine,
                                                             redis_url, run_worker):
    await _push(client, source_headers, 25)
    await app.state.after_commit.drain()
    Redis.from_url(redis_url).flushdb()  # a Redis restart: every queued job is gone
    await run_worker()
    assert statuses(sync_engine) == {"received": 25}
    assert reconcile(older_than_seconds=3600) == 0  # young leads are left to their own jobs
    assert reconcile(older_than_seconds=0) == 25
    await run_worker()
    assert statuses(sync_engine) == {"tiered": 25}
    assert reconcile(older_than_seconds=0) == 0


async def test_a_killed_worker_process_restarted_later_loses_nothing(app, client, source_headers, sync_engine,
                                                                     redis_url):
    """The real `quanzu worker` process, killed -9 while leads arrive; Redis loses its jobs too."""
    env = {**os.environ, "RECONCILE_AFTER_SECONDS": "1", "RECONCILE_EVERY_SECONDS": "1"}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def wait_for(expected: dict, seconds: float = 30) -> None:
        await until(lambda: statuses(sync_engine) == expected, seconds,
                    lambda: f"lead statuses {expected}, still {statuses(sync_engine)}", every=0.2)

    worker = start()
    try:
        await _push(client, source_headers, 5)
        await wait_for({"tiered": 5})
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        await _push(client, source_headers, 7)
        await app.state.after_commit.drain()
        Redis.from_url(redis_url).flushdb()
        assert statuses(sync_engine) == {"tiered": 5, "received": 7}
        worker = start()
        await wait_for({"tiered": 12})
    finally:
        worker.kill()
        worker.wait()


async def test_one_unworkable_lead_does_not_hold_up_the_others(client, source_headers, sync_engine, capfd):
    from sqlalchemy import update

    from workers.tasks import process_leads

    ids = [(await client.post("/api/v1/leads", json=make_lead(), headers=source_headers)).json()["id"]
           for _ in range(3)]
    with sync_engine.begin() as conn:  # a row no validator would have let in
        conn.execute(update(Lead).where(Lead.id == ids[1]).values(loc_crs="epsg:9999"))
    assert process_leads(ids) == {"asked": 3, "done": 2, "failed": 1, "given_up": 0}
    with sync_engine.connect() as conn:
        got = dict(conn.execute(select(Lead.id, Lead.status).where(Lead.id.in_(ids))).all())
    assert got == {ids[0]: "tiered", ids[1]: "received", ids[2]: "tiered"}
    assert "lead_processing_failed" in capfd.readouterr().err


async def test_a_lead_that_always_fails_ends_visibly_failed_and_is_not_resent(app, client, source_headers,
                                                                             sync_engine, redis_url, commander,
                                                                             run_worker, settings):
    """After max_processing_attempts failures: flagged processing_failed with its last error, listed
    by GET /leads?failed=true, shown on GET /leads/{id}, and neither reconciled nor processed again."""
    from sqlalchemy import update

    from dispatch.models import LeadEvent
    from workers.queues import lead_queue

    lead_id = (await client.post("/api/v1/leads", json=make_lead(), headers=source_headers)).json()["id"]
    good_id = (await client.post("/api/v1/leads", json=make_lead(), headers=source_headers)).json()["id"]
    with sync_engine.begin() as conn:  # a row no validator would have let in: no worker can place it
        conn.execute(update(Lead).where(Lead.id == lead_id).values(loc_crs="epsg:9999"))
    await run_worker()  # the job sent after commit: attempt 1

    def attempts() -> int:
        with sync_engine.connect() as conn:
            return conn.execute(select(Lead.attempts).where(Lead.id == lead_id)).scalar()

    while attempts() < settings.max_processing_attempts:  # each time the reconciler resends it
        Redis.from_url(redis_url).delete(enqueued_key())  # as if reenqueue_after_seconds had passed
        assert reconcile(older_than_seconds=0) == 1
        await run_worker()
    with sync_engine.connect() as conn:
        lead = conn.execute(select(Lead).where(Lead.id == lead_id)).one()
        kinds = list(conn.execute(select(LeadEvent.kind).where(LeadEvent.lead_id == lead_id)).scalars())
    assert lead.attempts == settings.max_processing_attempts and lead.status == "received"
    assert "epsg:9999" in lead.last_error and "processing_failed" in lead.flags
    assert kinds == ["received", "processing_failed"]
    # not resent: neither by the reconciler nor by a job that was already queued
    Redis.from_url(redis_url).delete(enqueued_key())
    assert reconcile(older_than_seconds=0) == 0
    from workers.tasks import process_leads
    assert process_leads([lead_id])["asked"] == 1 and lead_queue(Redis.from_url(redis_url), "quanzu").count == 0
    with sync_engine.connect() as conn:
        assert conn.execute(select(Lead.attempts).where(Lead.id == lead_id)).scalar() == lead.attempts
    # and the center sees it
    failed = (await client.get("/api/v1/leads?failed=true", headers=commander)).json()["items"]
    assert [x["id"] for x in failed] == [lead_id] and failed[0]["processing_failed"] is True
    others = (await client.get("/api/v1/leads?failed=false", headers=commander)).json()["items"]
    assert [x["id"] for x in others] == [good_id]
    detail = (await client.get(f"/api/v1/leads/{lead_id}", headers=commander)).json()
    assert detail["attempts"] == settings.max_processing_attempts and "epsg:9999" in detail["last_error"]
    assert detail["timeline"][-1]["kind"] == "processing_failed"


async def test_no_duplicate_jobs_pile_up_behind_a_busy_worker(app, client, source_headers, sync_engine,
                                                               redis_url, run_worker):
    """No worker drains the queue: the reconciler, firing again and again, resends a waiting lead
    once, then adds no job for it until its mark is reenqueue_after_seconds old."""
    from workers.queues import lead_queue

    await app.state.after_commit.drain()  # ids of an earlier test must not land in this one's queue
    Redis.from_url(redis_url).flushdb()
    await _push(client, source_headers, 30)
    await app.state.after_commit.drain()
    queue = lead_queue(Redis.from_url(redis_url), "quanzu")
    assert queue.count == 1
    assert reconcile(older_than_seconds=0) == 30  # its job waits: one resend
    for _ in range(5):
        assert reconcile(older_than_seconds=0) == 0
    assert queue.count == 2
    Redis.from_url(redis_url).delete(enqueued_key())  # as after reenqueue_after_seconds
    assert reconcile(older_than_seconds=0) == 30
    assert reconcile(older_than_seconds=0) == 0
    assert queue.count == 3
    await run_worker()
    assert statuses(sync_engine) == {"tiered": 30}
