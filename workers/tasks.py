"""rq tasks. They run in `quanzu worker` processes (rq SimpleWorker: one process keeps its
database pool, policy and beat index warm across jobs)."""
from __future__ import annotations

from datetime import timedelta
from functools import cached_property

from sqlalchemy import func, select

from dispatch.cases import rematch_person
from dispatch.models import Lead
from dispatch.service import place_and_tier, placement_for
from dispatch.tiering import Policy, load_policy
from geo.store import IndexCache
from service.core.db import make_sync_engine, sync_session
from service.core.logging import log
from service.core.redis import make_redis
from service.core.runtime import resolve_urls
from service.core.settings import get_settings
from workers.queues import enqueue_leads, lead_queue


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
        return load_policy(get_settings().policy_file)

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
                    # a case reported before this lead arrived is matched now (预警后发案)
                    rematch_person(session, lead.phone, lead.id_number)
            except Exception:  # logged with its traceback; the lead stays `received` for the reconciler
                log.exception("lead_processing_failed", lead_id=lead.id)
                failed.append(lead.id)
        session.commit()
    counts = {"asked": len(ids), "done": len(leads) - len(failed), "failed": len(failed)}
    log.info("leads_processed", **counts)
    return counts


def reconcile(older_than_seconds: float | None = None) -> int:
    """Re-enqueue every lead left in `received` too long: a lost job or a Redis restart loses nothing."""
    settings = get_settings()
    age = settings.reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    with sync_session(ctx.engine) as session:
        ids = list(session.execute(
            select(Lead.id).where(Lead.status == "received",
                                  Lead.received_at < func.now() - timedelta(seconds=age))
            .order_by(Lead.id).limit(50_000)).scalars())
    if ids:
        enqueue_leads(lead_queue(ctx.redis, settings.queue_name), ids)
        log.warning("reconciled", leads=len(ids))
    return len(ids)
