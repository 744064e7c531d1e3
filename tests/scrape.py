"""Reading a Prometheus scrape in tests: `value(text, name, **labels)` and the names it exposes."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly `labels` (0 when absent: a counter not yet counted)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels == labels:
                return s.value
    return 0.0


def names(text: str) -> set[str]:
    """Every series name a query may use (a labelled family is listed even before its first sample)."""
    out: set[str] = set()
    for family in text_string_to_metric_families(text):
        out.update(s.name for s in family.samples)
        if family.type in ("gauge", "unknown"):
            out.add(family.name)
        if family.type == "counter":
            out.add(family.name + "_total")
        if family.type == "histogram":
            out.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
    return out
