"""Prometheus metrics of the ground floor: errors from the servers quanzu depends on (PostgreSQL,
Redis), counted where they are classified — the API's error handlers, the workers' job failures and
the clock's ticks. The workflow's own metrics are in dispatch.metrics."""
from __future__ import annotations

from prometheus_client import Counter

DEPENDENCY_ERRORS = Counter("quanzu_dependency_errors_total",
                            "Errors talking to PostgreSQL or Redis, by dependency and the part that met them "
                            "(api, worker, clock)", ["dependency", "process"])
