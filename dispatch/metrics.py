"""Prometheus metrics of the lead workflow (served by /metrics)."""
from __future__ import annotations

from prometheus_client import Counter

LEADS_PUSHED = Counter("quanzu_leads_pushed_total", "Pushed leads by verdict", ["verdict"])
