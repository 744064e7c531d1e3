"""Column helpers every table module shares."""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Identity,
    Index,
    func,
    text,
)


def _ts(nullable: bool = True, default_now: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, server_default=func.now() if default_now else None)


def _sealed_indexes(table: str) -> tuple[Index, Index]:
    """The chain's order (unique positions) and the sealer's queue (rows not sealed yet); both
    partial, so an insert touches only the small second one."""
    return (Index(f"uq_{table}_seal_seq", "seal_seq", unique=True, postgresql_where=text("seal_seq IS NOT NULL")),
            Index(f"ix_{table}_unsealed", "id", postgresql_where=text("seal_seq IS NULL")))


def _id() -> Column:
    return Column(BigInteger, Identity(), primary_key=True)


def _lead_fk(nullable: bool = False) -> Column:
    return Column(BigInteger, ForeignKey("lead.id", ondelete="CASCADE"), nullable=nullable, index=True)
