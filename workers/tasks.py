"""rq tasks: thin entry points that load, call a flow or a capability, commit, and send what the
unit of work queued (`unit`). They run in `quanzu worker` processes (rq SimpleWorker: one process
keeps its database pool, policy and beat index warm across jobs)."""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from functools import cached_property

from sqlalchemy import func, select
from sqlmodel import Session

from dispatch import audit, flows, outbox
from dispatch.enums import Flag, LeadStatus, SmsStatus
from dispatch.field import offers
from dispatch.field.service import field_stats
from dispatch.field.squads import FieldConfig
from dispatch.ladder import phone, sms
from dispatch.ladder.sms import Gateway, make_gateway
from dispatch.models import Lead, SmsMessage
from dispatch.outcomes import feedback
from dispatch.policy import Policy, load_policy
from dispatch.triage.service import geocode_pending, placement_for, record_processing_failure
from geo.geocode import Geocoder, geocode_addresses, make_geocoder
from geo.models import District
from geo.store import IndexCache
from service.core import clock
from service.core.db import make_sync_engine, sync_session, timeouts
from service.core.logging import log
from service.core.redis import make_redis
from service.core.runtime import Urls
from service.core.settings import audit_secret, get_settings
from workers.queues import enqueue_leads, enqueue_sms, lead_queue, recently_enqueued, send

# Leads placed and tiered per transaction: small, so that no lead stays locked for long while a
# sign, a call or a case waits on it (each transaction holds its leads FOR NO KEY UPDATE).
TIER_CHUNK = 25
# An urgent job's first leads get a transaction each (their offer leaves straight after it); when a
# flush brings more than this (a bulk feed of fund transfers), the rest are tiered TIER_CHUNK at a
# time as ordinary leads are — a transaction per lead would make the flood itself the backlog.
URGENT_ALONE = 4


class _Context:
    """What a worker process builds once. `urls` are the configured servers unless the process that
    started the worker (the CLI, which may start embedded ones) gave its own."""

    @cached_property
    def urls(self) -> Urls:
        s = get_settings()
        if not s.database_url or not s.redis_url:
            raise RuntimeError("DATABASE_URL and REDIS_URL must be set for a worker (`quanzu worker` sets them)")
        return Urls(s.database_url, s.redis_url)

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
        return load_policy(get_settings().policy_file)

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
    def field(self) -> FieldConfig:
        return FieldConfig.of(get_settings(), self.policy)

    def online(self, usernames: list[str]) -> set[str]:
        return outbox.online(self.redis, usernames)


ctx = _Context()


@contextmanager
def unit() -> Iterator[Session]:
    """One unit of work of a task: committed at the end of the block, then what it queued is sent —
    visits that need a squad are offered right here, in this process (no second rq hop between a
    tiered lead and its offer)."""
    with sync_session(ctx.engine) as session:
        yield session
        session.commit()
    settings = get_settings()
    send(outbox.take(session), ctx.redis, lead_queue(ctx.redis, settings.queue_name), settings.sms_retry_intervals,
         visits=dispatch_visits)


# Historic leads (`import-leads --historic`) are placed and tiered by the import itself and never
# worked: no job and no reconciler may start a ladder on one.
_NOT_GIVEN_UP = ~Lead.flags.contains([Flag.processing_failed.value]) & ~Lead.historic


def process_leads(ids: list[int], log_counts: bool = True) -> dict:
    """Place and tier leads still `received`, a few per transaction. Safe to run twice: a lead
    already moved on, given up on, or locked by another worker right now, is skipped. A lead that
    fails is rolled back alone; its attempts and last error are recorded, and after
    `max_processing_attempts` it is flagged `processing_failed` and no longer retried. Address-only
    leads are geocoded first, with no lead locked (a slow geocoder holds up nobody else's work)."""
    max_attempts = get_settings().max_processing_attempts
    with unit() as session:
        loaded = ctx.index.get_sync(session)
        if loaded is None:
            raise RuntimeError("no district imported: run `quanzu import-district DIR`")
        geocoded = geocode_pending(session, ids, ctx.geocoder)  # cached with this commit
    placement_of = placement_for(loaded.index, loaded.district_codes, geocoded)
    done = failed = given_up = 0
    for i in range(0, len(ids), TIER_CHUNK):
        with unit() as session:
            leads = session.execute(select(Lead).where(Lead.id.in_(ids[i:i + TIER_CHUNK]),
                                                       Lead.status == LeadStatus.received, _NOT_GIVEN_UP)
                                    .order_by(Lead.id).with_for_update(skip_locked=True, key_share=True)
                                    ).scalars().all()
            box = outbox.of(session)
            for lead in leads:
                mark = box.mark()
                try:
                    with session.begin_nested():  # one bad lead must not hold up the others
                        flows.triage_lead(session, lead, placement_of, ctx.policy)
                    done += 1
                except Exception as exc:  # logged with its traceback; recorded on the lead
                    box.rewind(mark)
                    log.exception("lead_processing_failed", lead_id=lead.id)
                    failed += 1
                    given_up += record_processing_failure(session, lead, f"{exc.__class__.__name__}: {exc}",
                                                          max_attempts)
    counts = {"asked": len(ids), "done": done, "failed": failed, "given_up": given_up}
    if log_counts:  # an urgent job passing on the rest of its flush logs its own total
        log.info("leads_processed", **counts)
    return counts


def process_urgent(ids: list[int]) -> dict:
    """Leads that may be P0 (the urgent queue), the first `URGENT_ALONE` one transaction each: placed,
    tiered, linked, its work started and its visit offered to a squad — so the offer leaves on the
    sockets straight after that one commit (no second transaction, no second job), and no lead waits
    for another's; the rest of a big flush as `process_leads` works them. As
    `process_leads`, safe to run twice. If that transaction fails, the lead is tried once more
    without the offer (its visit is then offered after the commit, as an ordinary lead's is): a fault
    in matching never keeps a P0 from being tiered. A lead that fails that too is recorded alone."""
    max_attempts = get_settings().max_processing_attempts
    counts = Counter(asked=len(ids), done=0, failed=0, given_up=0)
    for lead_id in ids[:URGENT_ALONE]:
        try:
            try:
                counts["done"] += _start_urgent(lead_id, offer=True)
            except Exception:
                log.exception("urgent_offer_failed", lead_id=lead_id)
                counts["done"] += _start_urgent(lead_id, offer=False)
        except Exception as exc:  # rolled back; logged with its traceback and recorded on the lead
            log.exception("lead_processing_failed", lead_id=lead_id)
            counts["failed"] += 1
            with unit() as session:
                lead = session.get(Lead, lead_id)
                if lead is not None:
                    counts["given_up"] += record_processing_failure(
                        session, lead, f"{exc.__class__.__name__}: {exc}", max_attempts)
    if len(ids) > URGENT_ALONE:
        rest = process_leads(ids[URGENT_ALONE:], log_counts=False)
        counts.update({k: rest[k] for k in ("done", "failed", "given_up")})
    log.info("leads_processed", urgent=True, **counts)
    return dict(counts)


def _start_urgent(lead_id: int, offer: bool) -> bool:
    """One urgent lead's transaction → whether it was still to be worked. An address-only lead is
    geocoded with its row held (only that lead waits for the geocoder)."""
    with unit() as session:
        lead = session.execute(select(Lead).where(Lead.id == lead_id, Lead.status == LeadStatus.received,
                                                  _NOT_GIVEN_UP)
                               .with_for_update(skip_locked=True, key_share=True)).scalar()
        if lead is None:  # moved on, given up on, or another worker has it now
            return False
        loaded = ctx.index.get_sync(session)
        if loaded is None:
            raise RuntimeError("no district imported: run `quanzu import-district DIR`")
        geocoded = (geocode_addresses(session, [lead.loc_address], ctx.geocoder)
                    if lead.loc_address and lead.loc_lon is None else {})
        flows.triage_lead(session, lead, placement_for(loaded.index, loaded.district_codes, geocoded), ctx.policy)
        box = outbox.of(session)
        if offer and box.visits:  # offered in this transaction: nobody else can hold a visit not yet committed
            offers.offer_new_visits(session, list(box.visits), lead, ctx.field, ctx.online)
            box.visits.clear()
    return True


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
    ids = _stale_ids(Lead.id, Lead.status == LeadStatus.received, _NOT_GIVEN_UP,
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
    with unit() as session:
        made = offers.dispatch_visits(session, visit_ids, ctx.field, ctx.online)
        return [a.id for a in made]


def field_sweep() -> dict:
    """Every few seconds: expired offers → next squad; visits nobody dispatched; offers a live socket
    never had, pushed again; SMS fallbacks."""
    settings = get_settings()
    with unit() as session:
        expired = offers.expire_offers(session, ctx.field, ctx.online)
    with sync_session(ctx.engine) as session:
        waiting = offers.waiting_visits(session, settings.visit_waiting_seconds)
    offered = len(dispatch_visits(waiting)) if waiting else 0
    with unit() as session:
        repushed = offers.repush_undelivered(session, settings.offer_repush_seconds, ctx.online)
    with unit() as session:
        sms = offers.unacked_fallbacks(session, ctx.field)
    with unit() as session:  # the board's `stats`, on the sweep's clock: the city's, and each district's own
        outbox.board(session, "stats", field_stats(session))
        for code in session.execute(select(District.code).order_by(District.code)).scalars():
            outbox.board(session, "stats", field_stats(session, code), district=code, city=False)
    counts = {"expired": expired, "waiting": len(waiting), "offered": offered, "repushed": repushed, "sms": sms}
    if any(counts.values()):
        log.info("field_sweep", **counts)
    return counts


# ---------------------------------------------------------------- the response ladder
class SmsNotSent(Exception):
    """The gateway did not take the message this time; rq's Retry tries again after a backoff."""


def send_sms(message_ids: list[int] | int) -> dict:
    """Send pending SMS through the configured gateway, committing every few; if any was not taken
    this time, raise so that rq's Retry runs the job again after its backoff (the retry finds the
    sent ones no longer pending and tries only the rest)."""
    ids = [message_ids] if isinstance(message_ids, int) else list(message_ids)
    settings = get_settings()
    results: Counter[str] = Counter()
    for i in range(0, len(ids), 50):
        with unit() as session:
            results.update(flows.deliver_sms(session, ids[i:i + 50], ctx.gateway, ctx.policy,
                                             len(settings.sms_retry_intervals) + 1))
    if results["retry"]:
        raise SmsNotSent(f"{results['retry']} of {len(ids)} SMS not taken by the gateway; rq retries")
    return dict(results)


def poll_sms_receipts(limit: int = 500) -> dict:
    """Receipts of a gateway that does not call back (Aliyun's QuerySendDetails): ask about the
    messages sent and not final, then apply what came back, one transaction. Nothing for the others."""
    if not isinstance(ctx.gateway, sms.PolledReceipts):
        return {}
    with unit() as session:
        sent = sms.awaiting_receipts(session, clock.now(), limit)
    receipts = ctx.gateway.poll(sent) if sent else []  # no transaction open while the provider answers
    counts: Counter[str] = Counter()
    with unit() as session:
        for r in receipts:
            sms.note_receipt(session, r)
            if r.status is None:
                counts["waiting"] += 1
            elif flows.sms_receipt(session, r.gateway_message_id, r.status, ctx.policy)[0]:
                counts[r.status.value] += 1
    if counts:
        log.info("sms_receipts_polled", asked=len(sent), **counts)
    return dict(counts)


def sweep_deadlines(batch: int | None = None) -> int:
    """Act on every due deadline (in batches, one transaction each); → how many."""
    batch = batch or get_settings().deadline_sweep_batch
    total = 0
    while True:
        with unit() as session:
            n = flows.sweep_deadlines(session, clock.now(), ctx.policy, batch, ctx.field, ctx.online)
        total += n
        if n < batch:
            break
    with unit() as session:  # alarms nobody acknowledged in time climb a level
        escalated = flows.escalate_alarms(session, clock.now(), ctx.policy)
    if escalated:
        log.info("alarms_escalated", alarms=escalated)
    if total:
        log.info("deadlines_swept", missed=total)
    return total


def sweep_sms(older_than_seconds: float | None = None) -> int:
    """Re-enqueue pending SMS rows whose job was lost (crash, Redis flush) — whoever created them."""
    settings = get_settings()
    age = settings.sms_resend_after_seconds if older_than_seconds is None else older_than_seconds
    ids = _stale_ids(SmsMessage.id, SmsMessage.status == SmsStatus.pending,
                     SmsMessage.created_at < clock.now() - timedelta(seconds=age), limit=10_000)
    if ids:
        enqueue_sms(lead_queue(ctx.redis, settings.queue_name), ids, settings.sms_retry_intervals)
        log.warning("sms_resent", messages=len(ids))
    return len(ids)


# ---------------------------------------------------------------- dialling (the dial queue)
def dial(dial_id: int) -> str | None:
    """Place one dial on its SIP line and record what the phone network answered: taken (committed
    `dialling`, so a second copy of this job never dials again), the call followed to its end with
    no transaction open, then the result recorded as the operator's call in one transaction."""
    settings = get_settings()
    with unit() as session:
        taken = phone.start_dial(session, dial_id, settings.sip_lines)
    if taken is None:
        return None
    line, uri = taken
    heard = phone.place_call(line, uri, f"dial-{dial_id}", settings.sip_ring_timeout_seconds,
                             settings.sip_call_limit_seconds, settings.sip_connect_timeout_seconds)
    with unit() as session:
        return flows.record_dial(session, dial_id, heard, ctx.policy)


def sweep_dials() -> dict:
    """Dials no worker took are sent once more; dials whose worker vanished (past the ring timeout,
    the call limit and a margin) are recorded failed or unknown — never as a call result."""
    settings = get_settings()
    lost_after = settings.sip_ring_timeout_seconds + settings.sip_call_limit_seconds + 120
    with unit() as session:
        resent, lost = phone.stale_dials(session, clock.now(), settings.dial_resend_after_seconds, lost_after)
        phone.give_up(session, lost)
    if resent or lost:
        log.warning("dials_swept", resent=len(resent), given_up=len(lost))
    return {"resent": len(resent), "given_up": len(lost)}


# ---------------------------------------------------------------- feedback to the sources (反馈)
class _FeedbackClient:
    @cached_property
    def client(self):
        import httpx

        return httpx.Client(timeout=get_settings().feedback_timeout_seconds, follow_redirects=False)


_feedback = _FeedbackClient()


def deliver_feedback(sources: list[str] | str) -> dict:
    """Each source's pending deliveries, oldest first, while they are due and taken. One delivery
    per transaction, sent while its source's row is locked (no second worker sends it too); a
    failure backs off and holds the source's later deliveries until the sweep finds it due again."""
    settings = get_settings()
    counts: Counter[str] = Counter()
    for source in [sources] if isinstance(sources, str) else sources:
        while True:
            with unit() as session:
                if not feedback.lock_source(session, source):
                    counts["busy"] += 1  # another worker is delivering this source's queue
                    break
                due = feedback.next_due(session, source, clock.now())
                if due is None:
                    break
                error = feedback.post(_feedback.client, due)
                status = feedback.record_attempt(session, due, error, clock.now(), settings.feedback_max_attempts,
                                                 settings.feedback_backoff_seconds,
                                                 settings.feedback_backoff_max_seconds)
            counts[status] += 1
            if status == "pending":  # backing off: later ones wait behind it
                log.warning("feedback_failed", source=source, delivery_id=due.id, attempts=due.attempts + 1,
                            error=error)
                break
            if status == "dead":
                log.error("feedback_dead", source=source, delivery_id=due.id, error=error)
    return dict(counts)


def sweep_feedback() -> dict:
    """The clock's resend: every source whose oldest pending delivery is due (a job lost, a worker
    gone, an upstream that was down and whose backoff has passed)."""
    with sync_session(ctx.engine) as session:
        sources = feedback.due_sources(session, clock.now())
    return deliver_feedback(sources) if sources else {}
