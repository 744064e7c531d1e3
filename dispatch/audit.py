"""The tamper-evident audit trail: `lead_event` and `access_log` rows chained by keyed hashes.

Writers insert rows as before (the intake stores a lead and its event in one statement, with no
lock shared between pushes). A sealer (`seal`, an rq job fired by the worker's clock every few
seconds, one at a time under an advisory lock) gives every row not yet sealed the next position
of its table's chain, in id order, and stores

    seal = HMAC-SHA256(key, previous seal ‖ table ‖ position ‖ SHA-256 of the row's columns)

in the row (`seal_seq`, `seal`), and the chain's head (last position and seal) in `audit_head`.
`verify` walks each chain in position order and names the first broken link: a row whose
columns no longer match its seal (edited), a missing position or a head past the end (deleted),
a seal that does not follow from the one before (forged or moved), a row left out of the chain
longer than the unsealed window (inserted behind the sealer's back, or the sealer is not
running). The key (settings.audit_key, else derived from SECRET_KEY) is not in the database, so
whoever can only write SQL cannot compute a valid seal.
Unsealed window: rows younger than one sealing period (reconcile_every_seconds) plus the
time a sealing run takes; they are protected from the next run on.
"""
from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, text

from service.core.db import make_sync_engine
from service.core.settings import Settings, audit_secret

ADVISORY_LOCK = 0x7175616E7A75  # "quanzu": one sealer at a time, across workers
BATCH = 20_000

# Each table's columns that a seal covers (id first). PostgreSQL digests each row itself
# (`_DIGEST`): `format('%L,…')` quotes every value and writes NULL bare, so no two rows encode
# alike; times as microseconds since the epoch, so the session's TimeZone does not matter; JSONB's
# text form is canonical. Python only chains the 32-byte digests (measured in bench/audit.py).
TABLES: dict[str, tuple[str, ...]] = {
    "lead_event": ("id", "lead_id", "at", "actor", "kind", "data"),
    "access_log": ("id", "at", "actor", "role", "lead_id", "what"),
}
GENESIS = b"\x00" * 32


def _sql_value(column: str) -> str:
    return "(extract(epoch FROM at) * 1000000)::bigint" if column == "at" else column


def _digest(table: str) -> str:
    columns = TABLES[table]
    return (f"sha256(convert_to(format('{','.join(['%L'] * len(columns))}', "
            f"{', '.join(_sql_value(c) for c in columns)}), 'UTF8'))")


def audit_key(secret: str) -> bytes:
    """The HMAC key derived from a configured secret (AUDIT_KEY, else SECRET_KEY)."""
    return hmac.new(secret.encode(), b"quanzu audit chain v1", hashlib.sha256).digest()


class _Linker:
    """link(previous, position, digest) = HMAC-SHA256(key, previous ‖ table ‖ position ‖ digest)."""

    def __init__(self, key: bytes, table: str) -> None:
        self._base = hmac.new(key, digestmod=hashlib.sha256)
        self._table = table.encode() + b"\x00"

    def __call__(self, previous: bytes, position: int, digest: bytes) -> bytes:
        h = self._base.copy()
        h.update(previous + self._table + position.to_bytes(8, "big") + digest)
        return h.digest()


@dataclass(frozen=True)
class Broken:
    """The first broken link of a chain: which table, which row, what is wrong."""
    table: str
    row_id: int | None
    position: int | None
    problem: str

    def __str__(self) -> str:
        where = f"{self.table} id {self.row_id}" if self.row_id is not None else self.table
        at = f" (chain position {self.position})" if self.position is not None else ""
        return f"{where}{at}: {self.problem}"


@dataclass(frozen=True)
class ChainReport:
    table: str
    sealed: int
    unsealed: int  # inside the window: not yet sealed, not an error
    broken: Broken | None


def _head(conn: Connection, table: str, *, lock: bool) -> tuple[int, bytes]:
    row = conn.execute(text("SELECT position, seal FROM audit_head WHERE tbl = :t" + (" FOR UPDATE" if lock else "")),
                       {"t": table}).first()
    return (row[0], bytes(row[1])) if row else (0, GENESIS)


def seal(conn: Connection, key: bytes, *, limit: int = 1_000_000) -> dict[str, int]:
    """Chain every committed row not sealed yet (up to `limit` per table); the caller commits.
    Returns rows sealed per table; empty when another sealer holds the lock."""
    if not conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK}).scalar():
        return {}
    done: dict[str, int] = {}
    for table in TABLES:
        link = _Linker(key, table)
        conn.execute(text("INSERT INTO audit_head (tbl, position, seal) VALUES (:t, 0, :g) ON CONFLICT DO NOTHING"),
                     {"t": table, "g": GENESIS})
        position, previous = _head(conn, table, lock=True)
        count = 0
        while count < limit:
            rows = conn.execute(text(f"SELECT id, {_digest(table)} FROM {table} WHERE seal_seq IS NULL "
                                     f"ORDER BY id LIMIT :n"), {"n": min(BATCH, limit - count)}).all()
            if not rows:
                break
            ids, positions, seals = [], [], []
            for row_id, digest in rows:
                position += 1
                previous = link(previous, position, digest)
                ids.append(row_id)
                positions.append(position)
                seals.append(previous)
            conn.execute(text(f"UPDATE {table} AS t SET seal_seq = s.p, seal = s.h FROM "
                              f"unnest(CAST(:ids AS bigint[]), CAST(:ps AS bigint[]), CAST(:hs AS bytea[])) "
                              f"AS s(id, p, h) WHERE t.id = s.id"), {"ids": ids, "ps": positions, "hs": seals})
            count += len(rows)
        if count:
            conn.execute(text("UPDATE audit_head SET position = :p, seal = :h, sealed_at = now() WHERE tbl = :t"),
                         {"p": position, "h": previous, "t": table})
        done[table] = count
    return done


def _stream(conn: Connection, sql: str, size: int = 20_000) -> Iterator:
    result = conn.execution_options(stream_results=True, yield_per=size).execute(text(sql))
    for partition in result.partitions():
        yield from partition


def verify_table(conn: Connection, key: bytes, table: str, window: timedelta) -> ChainReport:
    """Walk `table`'s chain in position order; the first broken link, if any."""
    link = _Linker(key, table)
    expected, previous, sealed = 1, GENESIS, 0
    broken: Broken | None = None
    for row_id, position, stored, digest in _stream(conn, f"SELECT id, seal_seq, seal, {_digest(table)} "
                                                          f"FROM {table} WHERE seal_seq IS NOT NULL ORDER BY seal_seq"):
        stored = bytes(stored) if stored is not None else None
        if position != expected:
            broken = Broken(table, row_id, position, f"chain positions {expected}…{position - 1} are missing "
                                                     f"(rows deleted)")
            break
        if stored != link(previous, position, digest):
            problem = ("has a chain position but no seal" if stored is None else
                       "its columns do not match its seal (row edited, or a seal forged or copied)")
            broken = Broken(table, row_id, position, problem)
            break
        previous, expected, sealed = stored, expected + 1, sealed + 1
    head_position, head_seal = _head(conn, table, lock=False)
    if broken is None and (head_position, head_seal) != (expected - 1, previous):
        if head_position >= expected:
            broken = Broken(table, None, expected, f"the head says {head_position} rows were sealed, the chain ends "
                                                   f"at {expected - 1} (the last rows were deleted)")
        else:
            broken = Broken(table, None, head_position, "the chain's head does not match its last row "
                                                        "(audit_head edited)")
    # The database's clock, as it wrote `at`.
    late = conn.execute(text(f"SELECT id, at FROM {table} WHERE seal_seq IS NULL "
                             f"AND at < now() - make_interval(secs => :w) ORDER BY id LIMIT 1"),
                        {"w": window.total_seconds()}).first()
    if broken is None and late is not None:
        broken = Broken(table, late[0], None, f"written at {late[1].isoformat()} and not in the chain after "
                                              f"{window.total_seconds():g} s (inserted behind the sealer's back, "
                                              f"or no worker is sealing)")
    unsealed = conn.execute(text(f"SELECT count(*) FROM {table} WHERE seal_seq IS NULL")).scalar()
    return ChainReport(table, sealed, unsealed, broken)


def verify(conn: Connection, key: bytes, window: timedelta) -> list[ChainReport]:
    """Every chain, checked in one repeatable-read snapshot (the caller opens it)."""
    return [verify_table(conn, key, table, window) for table in TABLES]


def run_verify(database_url: str, settings: Settings, *, seal_first: bool = False) -> list[ChainReport]:
    """`quanzu audit verify`: optionally seal pending rows, then verify the chains and the rows the
    KPIs count (dispatch/audit_rows.py) in one snapshot."""
    key = audit_key(audit_secret(settings))
    engine = make_sync_engine(database_url, pool_size=1)
    try:
        if seal_first:
            with engine.connect() as conn:
                seal(conn, key)
                conn.commit()
        from dispatch.audit_rows import verify_rows  # the working rows, checked against the sealed events

        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            return verify(conn, key, timedelta(seconds=settings.audit_unsealed_window_seconds)) + verify_rows(conn)
    finally:
        engine.dispose()
