"""rq tasks. They run in `quanzu worker` processes (rq SimpleWorker: one process keeps its
database pool, policy and beat index warm across jobs)."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta
from functools import cached_property

from sqlalchemy import func, select

from dispatch.actions import deliver_sms, sweep_due
from dispatch.enums import SmsStatus
from dispatch.models import Lead, SmsMessage
from dispatch.service import place_and_tier, placement_for
from dispatch.sms import Gateway, make_gateway, queued_sms
from dispatch.tiering import Policy, active_policy
from geo.store import IndexCache
from service.core import clock
from service.core.db import make_sync_engine, sync_session
from service.core.logging import log
from service.core.redis import make_redis
from service.core.runtime import resolve_urls
from service.core.settings import get_settings
from workers.queues import enqueue_leads, enqueue_sms, lead_queue


class _Context:
    """What a worker process builds once."""

    @cached_property
    def urls(self):
        return resolve_urls(get_settings())

    @cached_property
    def engine(self):
        return make_sync_engine(self.urls.database_url)

    @cached_property
    def redis(self):
        return make_redis(self.urls.redis_url)

    @cached_property
    def policy(self) -> Policy:
        return active_policy()

    @cached_property
    def gateway(self) -> Gateway:
        return make_gateway(get_settings())

    @cached_property
    def index(self) -> IndexCache:
        return IndexCache()


ctx = _Context()


def process_leads(ids: list[int]) -> dict:
    """Place and tier leads still `received`. Safe to run twice: a lead already moved on, or locked
    by another worker right now, is skipped."""
    with sync_session(ctx.engine) as session:
        loaded = ctx.index.get_sync(session)
        if loaded is None:
            raise RuntimeError("no district imported: run `quanzu import-district DIR`")
        leads = session.execute(select(Lead).where(Lead.id.in_(ids), Lead.status == "received")
                                .order_by(Lead.id).with_for_update(skip_locked=True)).scalars().all()
        placement_of = placement_for(loaded.index, loaded.district_code)
        failed = []
        for lead in leads:
            try:
                with session.begin_nested():  # one bad lead must not hold up the others
                    place_and_tier(session, lead, placement_of, ctx.policy)
            except Exception:  # logged with its traceback; the lead stays `received` for the reconciler
                log.exception("lead_processing_failed", lead_id=lead.id)
                failed.append(lead.id)
        session.commit()
        _enqueue_sms(queued_sms(session))
    counts = {"asked": len(ids), "done": len(leads) - len(failed), "failed": len(failed)}
    log.info("leads_processed", **counts)
    return counts


def _stale_ids(id_column, *where, limit: int) -> list[int]:
    """Ids of rows some job should have handled by now (the reconciler's and the SMS sweep's scan)."""
    with sync_session(ctx.engine) as session:
        return list(session.execute(select(id_column).where(*where).order_by(id_column).limit(limit)).scalars())


def reconcile(older_than_seconds: float | None = None) -> int:
    """Re-enqueue every lead left in `received` too long: a lost job or a Redis restart loses nothing."""
    settings = get_settings()
    age = settings.reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    ids = _stale_ids(Lead.id, Lead.status == "received", Lead.received_at < func.now() - timedelta(seconds=age),
                     limit=50_000)
    if ids:
        enqueue_leads(lead_queue(ctx.redis, settings.queue_name), ids)
        log.warning("reconciled", leads=len(ids))
    return len(ids)


# ---------------------------------------------------------------- the response ladder
class SmsNotSent(Exception):
    """The gateway did not take the message this time; rq's Retry tries again after a backoff."""


def _enqueue_sms(ids: list[int]) -> None:
    if ids:
        settings = get_settings()
        enqueue_sms(lead_queue(ctx.redis, settings.queue_name), ids, settings.sms_retry_intervals)


def send_sms(message_ids: list[int] | int) -> dict:
    """Send pending SMS through the configured gateway, committing every few; if any was not taken
    this time, raise so that rq's Retry runs the job again after its backoff (the retry finds the
    sent ones no longer pending and tries only the rest)."""
    ids = [message_ids] if isinstance(message_ids, int) else list(message_ids)
    settings = get_settings()
    results: Counter[str] = Counter()
    with sync_session(ctx.engine) as session:
        for i, message_id in enumerate(ids, 1):
            results[deliver_sms(session, message_id, ctx.gateway, ctx.policy,
                                len(settings.sms_retry_intervals) + 1)] += 1
            if i % 50 == 0:
                session.commit()
        session.commit()
    if results["retry"]:
        raise SmsNotSent(f"{results['retry']} of {len(ids)} SMS not taken by the gateway; rq retries")
    return dict(results)


def sweep_deadlines(batch: int | None = None) -> int:
    """Act on every due deadline (in batches, one transaction each); → how many."""
    settings = get_settings()
    batch = batch or settings.deadline_sweep_batch
    total = 0
    while True:
        with sync_session(ctx.engine) as session:
            n = sweep_due(session, clock.now(), ctx.policy, batch)
            session.commit()
            _enqueue_sms(queued_sms(session))
        total += n
        if n < batch:
            break
    if total:
        log.info("deadlines_swept", missed=total)
    return total


def sweep_sms(older_than_seconds: float | None = None) -> int:
    """Re-enqueue pending SMS rows whose job was lost (crash, Redis flush) — whoever created them."""
    settings = get_settings()
    age = settings.sms_resend_after_seconds if older_than_seconds is None else older_than_seconds
    ids = _stale_ids(SmsMessage.id, SmsMessage.status == SmsStatus.pending,
                     SmsMessage.created_at < clock.now() - timedelta(seconds=age), limit=10_000)
    _enqueue_sms(ids)
    if ids:
        log.warning("sms_resent", messages=len(ids))
    return len(ids)
