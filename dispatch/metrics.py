"""Prometheus metrics of the lead workflow: what a center's on-call engineer watches (README "Seen
from outside"). Served by the API's /metrics and by each worker's exporter (METRICS_PORT).

Counters only on the hot path. What a unit of work did is counted after its commit, as its pushes
and jobs leave (`queue_from_event` → the outbox → `apply` in workers.queues.send): a rolled-back
close or offer is never counted. The timeline writer queues one count per event, so every event
kind is counted in one place; the few that an on-call engineer reads by name (closed by outcome,
offers, SMS by status) get metrics of their own from the same events."""
from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

LEADS_PUSHED = Counter("quanzu_leads_pushed_total", "Pushed leads by verdict", ["verdict"])
LEAD_EVENTS = Counter("quanzu_lead_events_total", "Timeline events committed, by kind", ["kind"])
LEADS_CLOSED = Counter("quanzu_leads_closed_total", "Leads closed, by outcome", ["outcome"])
LEADS_TRANSFERRED = Counter("quanzu_leads_transferred_total", "Leads transferred out of the district")
OFFERS = Counter("quanzu_offers_total", "Field offers by what became of them: sent, accepted, declined, expired, "
                 "withdrawn", ["event"])
SMS = Counter("quanzu_sms_total", "SMS by status: queued, sent, delivered, failed, skipped", ["status"])
ALARMS = Counter("quanzu_alarms_raised_total", "Alarms raised (a step's deadline missed), by kind", ["kind"])
DEADLINES_MISSED = Counter("quanzu_deadlines_missed_total", "Deadlines the sweep found missed, by name", ["name"])
PUSH_TO_OFFER = Histogram("quanzu_push_to_offer_seconds", "From a lead's arrival to its first field offer",
                          buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900))
SOCKETS = Gauge("quanzu_sockets_connected", "WebSockets open on this API process: squad or board", ["kind"])
JOBS = Counter("quanzu_jobs_total", "rq jobs run by this worker, by task and result (ok, failed)", ["task", "result"])
JOB_SECONDS = Histogram("quanzu_job_seconds", "rq job run time, by task", ["task"],
                        buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
CLOCK_TICK = Gauge("quanzu_clock_last_fired_timestamp_seconds",
                   "When this worker's clock last fired the periodic jobs (one worker per period does)")

# Event kind → (metric, label values). The event's data fills a label where it says so.
_BY_KIND = {
    "offered": (OFFERS, ("sent",)), "accepted": (OFFERS, ("accepted",)), "declined": (OFFERS, ("declined",)),
    "expired": (OFFERS, ("expired",)), "withdrawn": (OFFERS, ("withdrawn",)),
    "sms_queued": (SMS, ("queued",)), "sms_sent": (SMS, ("sent",)), "sms_delivered": (SMS, ("delivered",)),
    "sms_failed": (SMS, ("failed",)), "sms_skipped": (SMS, ("skipped",)),
    "transferred": (LEADS_TRANSFERRED, ()),
}

Count = tuple  # (metric, label values, amount): a Counter's inc or a Histogram's observe


def of_event(kind: str, data: dict | None) -> list[Count]:
    """What one timeline event counts."""
    out: list[Count] = [(LEAD_EVENTS, (kind,), 1)]
    if kind in _BY_KIND:
        metric, labels = _BY_KIND[kind]
        out.append((metric, labels, 1))
    elif kind == "closed":
        out.append((LEADS_CLOSED, (str((data or {}).get("outcome")),), 1))
    elif kind == "alarm_raised":
        out.append((ALARMS, (str((data or {}).get("kind")),), 1))
    elif kind == "deadline_missed":
        out.append((DEADLINES_MISSED, (str((data or {}).get("name")),), 1))
    return out


def apply(counts: Iterable[Count]) -> None:
    """Count what a committed unit of work did (called after its commit)."""
    for metric, labels, amount in counts:
        child = metric.labels(*labels) if labels else metric
        if isinstance(metric, Histogram):
            child.observe(amount)
        else:
            child.inc(amount)
