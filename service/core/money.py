"""Money on the wire: amounts are Numeric(14, 2) in PostgreSQL and JSON numbers out."""
from __future__ import annotations

from decimal import Decimal

MAX_CNY = Decimal("999999999999.99")  # what Numeric(14, 2) holds


def cny(v: Decimal | float | None) -> float | None:
    """An amount as a JSON number; None stays None."""
    return None if v is None else float(v)
