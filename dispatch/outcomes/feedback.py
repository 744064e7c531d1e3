"""Feedback to the sources (反馈): what became of the leads a platform sent us, told back to it.

A source registers a URL and a signing key (`quanzu source-feedback`). Every change a source cares
about — signed (签收), reached (a connected call), visited (a visit completed), closed with its
outcome, case filed (a post-warning case matched) — is a `feedback_delivery` row written in the
transaction of the change (a database outbox: a crash loses nothing). After commit an rq job
(`workers.tasks.deliver_feedback`) POSTs the source's pending rows, oldest first, one at a time;
a failed one holds back the later ones of its source (in order) and is tried again after an
exponential backoff (the workers' sweep resends whatever is due), until `feedback_max_attempts`
put it on the dead-letter list the center sees (and may retry).

Once: the deliverer holds the source's `feedback_source` row lock while it sends, so two workers
never send the same row; each body carries `delivery_id`, the receiver's idempotency key, for
the one case no sender can rule out (the receiver stored it and the answer was lost).

A lead merged into another lead's work (`merged_into = W`) hears of W's changes: when W changes,
its source and the source of every lead merged into W get a delivery each. Historic leads
(`import-leads --historic`) get none."""
from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import orjson
from sqlalchemy import text

from dispatch import outbox
from service.core import clock
from service.core.errors import NotFound, ValidationFailed

EVENTS = ("signed", "reached", "visited", "closed", "case_filed")
SIGNATURE_HEADER = "X-Quanzu-Signature"  # sha256=<hex HMAC-SHA256 of the body with the source's key>
DELIVERY_HEADER = "X-Quanzu-Delivery"  # the delivery id (idempotency key), also in the body
EVENT_HEADER = "X-Quanzu-Event"


# ---------------------------------------------------------------- pure: signature, backoff, body
def new_key() -> str:
    return secrets.token_urlsafe(32)


def signature(key: str, body: bytes) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def verify(key: str, body: bytes, header: str) -> bool:
    """What a receiver does (documented in the README; the tests use it)."""
    return hmac.compare_digest(signature(key, body), header or "")


def backoff(attempts: int, base: float, cap: float) -> timedelta:
    """After the n-th failed attempt: base·2^(n-1), at most `cap`."""
    return timedelta(seconds=min(cap, base * 2 ** max(0, attempts - 1)))


def body_of(delivery_id: int, payload: str) -> bytes:
    """The bytes POSTed: the stored payload with the delivery's own id first."""
    return orjson.dumps({"delivery_id": delivery_id, **orjson.loads(payload)})


# ---------------------------------------------------------------- written with the change
# One delivery for the lead that changed and one for each lead merged into its work, to every
# such lead's source that registered a URL. `at`: the change's time on quanzu's clock.
_WRITE = text("""
INSERT INTO feedback_delivery (source, lead_id, event, payload, next_attempt_at, created_at)
SELECT l.source, l.id, CAST(:event AS text),
       jsonb_build_object('event', CAST(:event AS text), 'source', l.source, 'source_id', l.source_id,
                          'lead_id', l.id, 'work_lead_id', CAST(:w AS bigint), 'at', CAST(:at_iso AS text),
                          'data', CAST(:data AS jsonb))::text,
       :at, :at
FROM lead l JOIN feedback_source f ON f.source = l.source
WHERE (l.id = :w OR l.merged_into = :w) AND NOT l.historic
ORDER BY l.id
RETURNING source""")


def feed_back(session, lead, event: str, data: dict | None = None) -> int:
    """The change `event` of `lead` (the work) → a delivery to each source that hears of it, in the
    caller's transaction; a job to send them goes with the commit. → deliveries written."""
    if lead.historic:
        return 0
    now = clock.now()
    sources = session.execute(_WRITE, {"event": event, "w": lead.id, "at": now, "at_iso": clock.iso(now),
                                       "data": orjson.dumps(data or {}).decode()}).scalars().all()
    if sources:
        outbox.feedback(session, *sources)
    return len(sources)


# Deliveries the case matching wrote in this transaction (its SQL writes them: see cases.py).
_WRITTEN_NOW = text("SELECT DISTINCT source FROM feedback_delivery WHERE status = 'pending' AND created_at = now()")


async def sent_with_commit(session) -> None:
    """Deliveries written by SQL in this transaction (async session) go out with its commit."""
    sources = (await session.execute(_WRITTEN_NOW)).scalars().all()
    if sources:
        outbox.feedback(session, *sources)


def sent_with_commit_sync(session) -> None:
    sources = session.execute(_WRITTEN_NOW).scalars().all()
    if sources:
        outbox.feedback(session, *sources)


# ---------------------------------------------------------------- registering a source
def register(session, source: str, url: str, key: str | None) -> tuple[str, bool]:
    """Set a source's feedback URL (and key; none given: the one it has, else a new one).
    → (key, created). The caller commits."""
    if not source or "\x00" in source:
        raise ValidationFailed([{"field": "source", "message": "must be a non-empty string"}])
    parsed = httpx.URL(url) if url else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationFailed([{"field": "url", "message": "must be an http:// or https:// URL"}])
    if key is not None and len(key) < 16:
        raise ValidationFailed([{"field": "key", "message": "must be at least 16 characters"}])
    row = session.execute(text("SELECT key FROM feedback_source WHERE source = :s FOR UPDATE"),
                          {"s": source}).first()
    key = key or (row.key if row else new_key())
    session.execute(text("""
        INSERT INTO feedback_source (source, url, key) VALUES (:s, :u, :k)
        ON CONFLICT (source) DO UPDATE SET url = excluded.url, key = excluded.key, updated_at = now()"""),
                    {"s": source, "u": url, "k": key})
    return key, row is None


_SOURCES = text("""
SELECT f.source, f.url, f.created_at, f.updated_at,
       count(d.id) FILTER (WHERE d.status = 'pending') AS pending,
       count(d.id) FILTER (WHERE d.status = 'delivered') AS delivered,
       count(d.id) FILTER (WHERE d.status = 'dead') AS dead,
       max(d.delivered_at) AS last_delivered_at
FROM feedback_source f LEFT JOIN feedback_delivery d ON d.source = f.source
GROUP BY f.source ORDER BY f.source""")


async def list_sources(session) -> list[dict]:
    return [{"source": r.source, "url": r.url, "created_at": clock.iso(r.created_at),
             "updated_at": clock.iso(r.updated_at), "pending": r.pending, "delivered": r.delivered,
             "dead": r.dead, "last_delivered_at": clock.iso(r.last_delivered_at)}
            for r in (await session.execute(_SOURCES)).all()]


# ---------------------------------------------------------------- the dead-letter list
def _public(r) -> dict:
    return {"id": r.id, "source": r.source, "lead_id": r.lead_id, "event": r.event, "status": r.status,
            "attempts": r.attempts, "last_error": r.last_error, "created_at": clock.iso(r.created_at),
            "next_attempt_at": clock.iso(r.next_attempt_at), "delivered_at": clock.iso(r.delivered_at)}


async def list_dead(session, source: str | None, limit: int) -> list[dict]:
    rows = (await session.execute(text(
        "SELECT * FROM feedback_delivery WHERE status = 'dead' AND (CAST(:s AS text) IS NULL OR source = :s) "
        "ORDER BY id LIMIT :n"), {"s": source, "n": limit})).all()
    return [_public(r) for r in rows]


async def retry_dead(session, delivery_id: int) -> dict:
    """A dead delivery back in its source's queue, its attempts counted afresh (sent with the commit)."""
    row = (await session.execute(text(
        "UPDATE feedback_delivery SET status = 'pending', attempts = 0, next_attempt_at = :now, last_error = NULL "
        "WHERE id = :id AND status = 'dead' RETURNING *"), {"id": delivery_id, "now": clock.now()})).first()
    if row is None:
        raise NotFound(f"no dead feedback delivery {delivery_id}")
    outbox.feedback(session, row.source)
    return _public(row)


# ---------------------------------------------------------------- delivering (workers)
@dataclass(frozen=True, slots=True)
class Due:
    id: int
    source: str
    url: str
    key: str
    event: str
    payload: str
    attempts: int


_NEXT = text("""
SELECT d.id, d.source, f.url, f.key, d.event, d.payload, d.attempts, d.next_attempt_at
FROM feedback_delivery d JOIN feedback_source f USING (source)
WHERE d.source = :s AND d.status = 'pending' ORDER BY d.id LIMIT 1""")


def lock_source(session, source: str) -> bool:
    """The source's delivery turn, held to the end of the transaction; False: another worker has it."""
    return session.execute(text("SELECT 1 FROM feedback_source WHERE source = :s FOR UPDATE SKIP LOCKED"),
                           {"s": source}).first() is not None


def next_due(session, source: str, now: datetime) -> Due | None:
    """The source's oldest pending delivery if its time has come; a later one never overtakes it."""
    r = session.execute(_NEXT, {"s": source}).first()
    if r is None or r.next_attempt_at > now:
        return None
    return Due(r.id, r.source, r.url, r.key, r.event, r.payload, r.attempts)


def post(client: httpx.Client, due: Due) -> str | None:
    """One attempt → None when the receiver took it (2xx), else why not."""
    body = body_of(due.id, due.payload)
    try:
        r = client.post(due.url, content=body, headers={
            "Content-Type": "application/json", SIGNATURE_HEADER: signature(due.key, body),
            DELIVERY_HEADER: str(due.id), EVENT_HEADER: due.event})
    except httpx.HTTPError as exc:
        return f"{exc.__class__.__name__}: {exc}"[:500]
    return None if r.is_success else f"HTTP {r.status_code}: {r.text[:200]}"


def record_attempt(session, due: Due, error: str | None, now: datetime, max_attempts: int, base: float,
                   cap: float) -> str:
    """→ the delivery's status after this attempt: delivered, pending (backing off) or dead."""
    attempts = due.attempts + 1
    if error is None:
        status, nxt = "delivered", now
    elif attempts >= max_attempts:
        status, nxt = "dead", now
    else:
        status, nxt = "pending", now + backoff(attempts, base, cap)
    session.execute(text(
        "UPDATE feedback_delivery SET status = :st, attempts = :a, next_attempt_at = :n, last_error = :e, "
        "delivered_at = :d WHERE id = :id"),
        {"st": status, "a": attempts, "n": nxt, "e": error, "d": now if status == "delivered" else None, "id": due.id})
    return status


def due_sources(session, now: datetime) -> list[str]:
    """Sources whose oldest pending delivery is due (the sweep's scan)."""
    return list(session.execute(text("""
        SELECT source FROM (SELECT DISTINCT ON (source) source, next_attempt_at FROM feedback_delivery
                            WHERE status = 'pending' ORDER BY source, id) first
        WHERE next_attempt_at <= :now"""), {"now": now}).scalars())
