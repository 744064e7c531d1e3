"""Deadlines are rows, not timers: Redis flushed and a `quanzu worker` killed with -9 while
deadlines are pending and due — after a restart every due deadline is acted on exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from redis import Redis
from sqlalchemy import func, select

from dispatch.models import LeadDeadline, LeadEvent, Visit
from service.core import clock
from tests.ladder.helpers import lead_of, push
from tests.waiting import until
from workers.tasks import process_leads

pytestmark = pytest.mark.usefixtures("district", "clean")

AHEAD = timedelta(hours=6)  # the worker's clock: six hours on, past every deadline shorter than that


def count_due(sync_engine, now) -> int:
    with sync_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(LeadDeadline).where(
            LeadDeadline.state == "pending", LeadDeadline.due_at <= now)).scalar_one()


def count_missed(sync_engine) -> int:
    with sync_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(LeadDeadline).where(
            LeadDeadline.state == "missed")).scalar_one()


async def test_flush_and_kill_9_lose_no_deadline_and_act_on_none_twice(app, client, source_headers, sync_engine,
                                                                       redis_url):
    kinds = ["P0", "P1", "P1_resident", "P2", "P3"] * 8
    ids = [await push(client, source_headers, lead_of(k, subject={"id_number": None})) for k in kinds]
    await app.state.after_commit.drain()
    assert process_leads(ids)["done"] == len(ids)
    Redis.from_url(redis_url).flushdb()  # every queued job (the SMS sends) gone: only rows remain
    later = clock.now() + AHEAD
    due = count_due(sync_engine, later)
    assert due > 100
    env = {**os.environ, "QUANZU_CLOCK_OFFSET_SECONDS": str(AHEAD.total_seconds()),
           "DEADLINE_SWEEP_EVERY_SECONDS": "1", "DEADLINE_SWEEP_BATCH": "7", "RECONCILE_EVERY_SECONDS": "1"}

    def start() -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "service.cli", "worker"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    worker = start()
    try:
        await until(lambda: count_missed(sync_engine) > 0, 60, "the worker's sweep marking a first deadline missed")
        worker.send_signal(signal.SIGKILL)  # the sweep has begun: it dies mid-way
        worker.wait()
        acted_before = count_missed(sync_engine)
        Redis.from_url(redis_url).flushdb()
        worker = start()
        await until(lambda: count_due(sync_engine, later) == 0, 60,
                    lambda: f"every due deadline acted on after the restart, {count_due(sync_engine, later)} still due")
    finally:
        worker.kill()
        worker.wait()
    with sync_engine.connect() as conn:
        missed = conn.execute(select(LeadDeadline.lead_id, LeadDeadline.name).where(
            LeadDeadline.state == "missed")).all()
        recorded = Counter(conn.execute(select(LeadEvent.lead_id, LeadEvent.data["name"].astext).where(
            LeadEvent.kind == "deadline_missed")).all())
        escalations = Counter(conn.execute(select(LeadEvent.lead_id).where(
            LeadEvent.kind == "escalated", LeadEvent.data["rule"].astext == "no_connection")).scalars())
        visits = Counter(conn.execute(select(Visit.lead_id)).scalars())
    assert acted_before < len(missed)  # the kill left work for the restarted worker
    assert len(missed) >= due and set(recorded.values()) == {1}  # every due one, each exactly once
    assert sorted(recorded) == sorted((m.lead_id, m.name) for m in missed)
    p0_p1 = [i for i, k in zip(ids, kinds) if k.startswith(("P0", "P1"))]
    assert sorted(escalations) == sorted(p0_p1) and set(escalations.values()) == {1}
    assert set(visits.values()) == {1}  # one visit per lead, however often the sweep ran
