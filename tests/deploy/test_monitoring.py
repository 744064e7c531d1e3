"""deploy/monitoring: the Grafana dashboard and the alert rules use only what quanzu exposes, and the
scrape-time gauges and the workers' counters say what happened (real PostgreSQL, Redis, rq)."""
from __future__ import annotations

import json
import re

import httpx
import pytest
import yaml
from redis import Redis
from rq.cron import CronScheduler
from rq.scheduler import RQScheduler
from sqlalchemy import text

from service import health
from tests.data import ROOT
from tests.factories import make_lead
from tests.mobile_api.conftest import free_port
from tests.scrape import names, value
from workers.queues import lead_queue, urgent_queue_name
from workers.scheduler import tick

MONITORING = ROOT / "deploy" / "monitoring"
# What PromQL itself provides (functions, keywords, Prometheus' own series), not a quanzu metric.
QUANZU_NAME = re.compile(r"\bquanzu_[a-z_]+\b")


def dashboard_exprs() -> list[str]:
    doc = json.loads((MONITORING / "grafana-dashboard.json").read_text(encoding="utf-8"))
    assert doc["uid"] and doc["panels"]
    exprs = [t["expr"] for p in doc["panels"] for t in p["targets"]]
    assert all(exprs) and len(exprs) >= 14
    return exprs


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((MONITORING / "alerts.yml").read_text(encoding="utf-8"))
    rules = [r for g in doc["groups"] for r in g["rules"]]
    for r in rules:
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r
        assert r["alert"] and r["expr"] and r["labels"]["severity"] in {"warning", "critical"}, r
    return rules


def test_dashboard_and_rules_parse_and_cover_what_on_call_watches():
    alerts = {r["alert"] for r in alert_rules()}
    # deadline overdue, queue growing, jobs failing, no worker heartbeat, /readyz failing
    assert {"QuanzuDeadlineOverdue", "QuanzuQueueGrowing", "QuanzuJobsFailing", "QuanzuNoWorkerHeartbeat",
            "QuanzuNotReady", "QuanzuClockStopped"} <= alerts
    used = {n for e in dashboard_exprs() for n in QUANZU_NAME.findall(e)}
    assert {"quanzu_leads_pushed_total", "quanzu_leads_closed_total", "quanzu_rq_queue_depth",
            "quanzu_deadlines_overdue", "quanzu_push_to_offer_seconds_bucket", "quanzu_sockets_connected",
            "quanzu_sms_total", "quanzu_offers_total", "quanzu_dependency_errors_total"} <= used
    scrape = yaml.safe_load((MONITORING / "prometheus.yml").read_text(encoding="utf-8"))
    assert scrape["rule_files"] == ["alerts.yml"] and scrape["scrape_configs"][0]["job_name"] == "quanzu"


@pytest.mark.usefixtures("district", "clean")
async def test_every_metric_the_dashboard_and_rules_use_is_exposed_and_counts(app, client, source_headers, run_worker,
                                                                              sync_engine, redis_url, monkeypatch):
    monkeypatch.setattr(health, "SNAPSHOT_SECONDS", 0.0)  # read the shared gauges at every scrape here
    before = (await client.get("/metrics")).text
    r = await client.post("/api/v1/leads", json=make_lead(warning_type="fund_transfer", risk_level=1),
                          headers=source_headers)
    assert r.status_code == 202
    lead_id = r.json()["id"]
    settings = app.state.settings
    redis = Redis.from_url(redis_url)
    queue = lead_queue(redis, settings.queue_name)
    await app.state.after_commit.drain()
    queued = (await client.get("/metrics")).text
    # a fund transfer may be P0: its job waits on the urgent queue, the ordinary one is empty
    assert value(queued, "quanzu_rq_queue_depth", queue=urgent_queue_name()) == 1
    assert value(queued, "quanzu_rq_queue_depth", queue=settings.queue_name) == 0
    queue.enqueue("workers.tasks.no_such_task")  # a job that fails: counted by the worker and kept by rq
    await run_worker()  # place and tier the lead (its deadlines are made), fail the other job
    with sync_engine.begin() as conn:  # the sweep did not run: the sign deadline is 90 s overdue
        n = conn.execute(text("UPDATE lead_deadline SET due_at = now() - interval '90 seconds' "
                              "WHERE lead_id = :id AND name = 'sign' AND state = 'pending'"), {"id": lead_id}).rowcount
        assert n == 1
        events = dict(conn.execute(text("SELECT kind, count(*) FROM lead_event WHERE lead_id = :id GROUP BY kind"),
                                   {"id": lead_id}).all())
    # this process's clock takes its period (nothing registered to fire: it only holds the clock)
    assert tick(CronScheduler(connection=redis, name="metrics-test"), RQScheduler([settings.queue_name],
                connection=redis), redis, 5) is False
    after = (await client.get("/metrics")).text

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("quanzu_leads_pushed_total", verdict="accepted") == 1
    assert events["placed"] == events["tiered"] == 1
    for kind in ("placed", "tiered", "sms_queued"):  # every timeline event of the lead, counted after its commit
        assert delta("quanzu_lead_events_total", kind=kind) == events.get(kind, 0), kind
    assert delta("quanzu_sms_total", status="queued") == events.get("sms_queued", 0)
    assert delta("quanzu_jobs_total", task="process_urgent", result="ok") == 1
    assert delta("quanzu_jobs_total", task="no_such_task", result="failed") == 1
    assert value(after, "quanzu_rq_jobs_failed", queue=settings.queue_name) == 1
    assert value(after, "quanzu_rq_queue_depth", queue=settings.queue_name) == 0
    assert value(after, "quanzu_rq_workers", queue=settings.queue_name) == 0  # the burst worker is gone
    assert value(after, "quanzu_deadlines_overdue", kind="sign") == 1
    assert 90 <= value(after, "quanzu_deadline_overdue_oldest_seconds", kind="sign") < 150
    assert value(after, "quanzu_ready", dependency="database") == value(after, "quanzu_ready", dependency="redis") == 1
    assert value(after, "quanzu_clock_last_fired_timestamp_seconds") > 0

    exposed = names(after)
    for expr in dashboard_exprs() + [r["expr"] for r in alert_rules()]:
        for name in QUANZU_NAME.findall(expr):
            assert name in exposed, f"{name} (in {expr!r}) is not exposed by quanzu"


async def test_a_worker_serves_its_metrics_on_metrics_port():
    from workers.run import serve_metrics

    port = free_port()
    serve_metrics(port)
    async with httpx.AsyncClient() as http:
        r = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert r.status_code == 200
    assert {"quanzu_jobs_total", "quanzu_job_seconds_bucket", "quanzu_clock_last_fired_timestamp_seconds",
            "quanzu_lead_events_total", "quanzu_dependency_errors_total"} <= names(r.text)
    serve_metrics(port)  # a second worker on the same host and port: it works on, without metrics
