"""rq tasks. They run in `quanzu worker` processes (rq SimpleWorker: one process keeps its
database pool, policy and beat index warm across jobs)."""
from __future__ import annotations

from collections import Counter
from datetime import timedelta
from functools import cached_property

from sqlalchemy import func, select

from dispatch import assignments, audit, events
from dispatch.actions import deliver_sms, sweep_due
from dispatch.cases import rematch_person
from dispatch.enums import Flag, SmsStatus
from dispatch.models import Lead, SmsMessage
from dispatch.service import geocode_pending, place_and_tier, placement_for, record_processing_failure
from dispatch.sms import Gateway, make_gateway, queued_sms
from dispatch.tiering import Policy, active_policy
from geo.geocode import Geocoder, make_geocoder
from geo.store import IndexCache
from service.core import clock
from service.core.db import make_sync_engine, sync_session, timeouts
from service.core.logging import log
from service.core.redis import make_redis
from service.core.runtime import resolve_urls
from service.core.settings import audit_secret, get_settings
from workers.queues import enqueue_leads, enqueue_sms, lead_queue, recently_enqueued


class _Context:
    """What a worker process builds once."""

    @cached_property
    def urls(self):
        return resolve_urls(get_settings())

    @cached_property
    def engine(self):
        s = get_settings()
        return make_sync_engine(self.urls.database_url, server_settings=timeouts(s.statement_timeout_ms,
                                                                                 s.lock_timeout_ms))

    @cached_property
    def redis(self):
        s = get_settings()
        return make_redis(self.urls.redis_url, s.redis_connect_timeout_seconds, s.redis_socket_timeout_seconds)

    @cached_property
    def policy(self) -> Policy:
        return active_policy()

    @cached_property
    def gateway(self) -> Gateway:
        return make_gateway(get_settings())

    @cached_property
    def index(self) -> IndexCache:
        return IndexCache()

    @cached_property
    def geocoder(self) -> Geocoder | None:
        return make_geocoder(get_settings())

    @cached_property
    def field(self) -> assignments.FieldConfig:
        return assignments.FieldConfig.of(get_settings(), self.policy)

    def configure_events(self) -> None:
        """A worker dispatches a visit its own commit made at once, in the same process (the fast
        path: no second rq hop between tiering and the offer); the sweep catches any it loses."""
        events.configure(self.redis, on_visit=dispatch_visits)


ctx = _Context()


_NOT_GIVEN_UP = ~Lead.flags.contains([Flag.processing_failed.value])


def process_leads(ids: list[int]) -> dict:
    """Place and tier leads still `received`. Safe to run twice: a lead already moved on, given up
    on, or locked by another worker right now, is skipped. A lead that fails is rolled back alone;
    its attempts and last error are recorded, and after `max_processing_attempts` it is flagged
    `processing_failed` and no longer retried. Address-only leads are geocoded first, with no lead
    locked (a slow geocoder holds up nobody else's work)."""
    max_attempts = get_settings().max_processing_attempts
    with sync_session(ctx.engine) as session:
        loaded = ctx.index.get_sync(session)
        if loaded is None:
            raise RuntimeError("no district imported: run `quanzu import-district DIR`")
        geocoded = geocode_pending(session, ids, ctx.geocoder)
        leads = session.execute(select(Lead).where(Lead.id.in_(ids), Lead.status == "received", _NOT_GIVEN_UP)
                                .order_by(Lead.id).with_for_update(skip_locked=True)).scalars().all()
        placement_of = placement_for(loaded.index, loaded.district_code, geocoded)
        failed, given_up = [], 0
        for lead in leads:
            try:
                with session.begin_nested():  # one bad lead must not hold up the others
                    place_and_tier(session, lead, placement_of, ctx.policy)
                    # a case reported before this lead arrived is matched now (预警后发案)
                    rematch_person(session, lead.phone, lead.id_number)
            except Exception as exc:  # logged with its traceback; recorded on the lead
                log.exception("lead_processing_failed", lead_id=lead.id)
                failed.append(lead.id)
                given_up += record_processing_failure(session, lead, f"{exc.__class__.__name__}: {exc}",
                                                      max_attempts)
        session.commit()
        _enqueue_sms(queued_sms(session))
    counts = {"asked": len(ids), "done": len(leads) - len(failed), "failed": len(failed), "given_up": given_up}
    log.info("leads_processed", **counts)
    return counts


def _stale_ids(id_column, *where, limit: int) -> list[int]:
    """Ids of rows some job should have handled by now (the reconciler's and the SMS sweep's scan)."""
    with sync_session(ctx.engine) as session:
        return list(session.execute(select(id_column).where(*where).order_by(id_column).limit(limit)).scalars())


def reconcile(older_than_seconds: float | None = None) -> int:
    """Re-enqueue every lead left in `received` too long: a lost job or a Redis restart loses nothing.
    Skips leads given up on (processing_failed) and leads it resent in the last
    `reenqueue_after_seconds` (their job is still waiting behind a busy worker). → leads enqueued."""
    settings = get_settings()
    age = settings.reconcile_after_seconds if older_than_seconds is None else older_than_seconds
    ids = _stale_ids(Lead.id, Lead.status == "received", _NOT_GIVEN_UP,
                     Lead.received_at < func.now() - timedelta(seconds=age), limit=50_000)
    waiting = recently_enqueued(ctx.redis, ids, settings.reenqueue_after_seconds)
    ids = [i for i in ids if i not in waiting]
    if ids:
        enqueue_leads(lead_queue(ctx.redis, settings.queue_name), ids, mark=True)
        log.warning("reconciled", leads=len(ids), still_waiting=len(waiting))
    return len(ids)


def seal_audit() -> dict[str, int]:
    """Chain the lead_event / access_log rows written since the last run (dispatch/audit.py)."""
    key = audit.audit_key(audit_secret(get_settings()))
    with ctx.engine.connect() as conn:
        sealed = audit.seal(conn, key)
        conn.commit()
    if any(sealed.values()):
        log.info("audit_sealed", **sealed)
    return sealed


def dispatch_visits(visit_ids: list[int]) -> list[int]:
    """Waiting visits → offers to the best squads (or back to the center), in one transaction.
    Safe to run twice: a visit already offered is left alone."""
    with sync_session(ctx.engine) as session:
        made = assignments.dispatch_visits(session, visit_ids, ctx.field, events.online_of_config)
        session.commit()
        _enqueue_sms(queued_sms(session))  # offers no phone could take go by SMS
        return [a.id for a in made]


def field_sweep() -> dict:
    """Every few seconds: expired offers → next squad; visits nobody dispatched; SMS fallbacks."""
    settings = get_settings()
    with sync_session(ctx.engine) as session:
        expired = assignments.expire_offers(session, ctx.field, events.online_of_config)
        session.commit()
    with sync_session(ctx.engine) as session:
        waiting = assignments.waiting_visits(session, settings.visit_waiting_seconds)
    offered = len(dispatch_visits(waiting)) if waiting else 0
    with sync_session(ctx.engine) as session:
        sms = assignments.unacked_fallbacks(session, ctx.field)
        session.commit()
        _enqueue_sms(queued_sms(session))
    with sync_session(ctx.engine) as session:  # the board's `stats`, on the sweep's clock
        events.board(session, "stats", assignments.field_stats(session))
        session.commit()
    counts = {"expired": expired, "waiting": len(waiting), "offered": offered, "sms": sms}
    if any(counts.values()):
        log.info("field_sweep", **counts)
    return counts


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
