"""SQL for the hot ingest path: one round trip stores leads and their `received` events.

Written as plain SQL on a plain asyncpg connection (service.core.db.make_intake_pool) because intake is measured against a bare
INSERT (bench/ingest.py); everything else goes through SQLModel sessions."""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from decimal import Decimal

import asyncpg
import orjson

from dispatch.intake.schemas import LeadIn
from service.core.db import acquire
from service.core.errors import REFUSED, Unavailable

LEAD_COLUMNS = ("source", "source_id", "pushed_at", "warning_type", "fraud_type", "fraud_type_raw", "risk_level",
                "ongoing", "phone", "name", "id_number", "residency", "counterpart", "amount_cny", "loc_lon",
                "loc_lat", "loc_crs", "loc_accuracy_m", "loc_kind", "loc_address", "flags")
_TYPES = ("text", "text", "timestamptz", "text", "text", "text", "int2", "bool", "text", "text", "text", "text",
          "jsonb", "numeric", "float8", "float8", "text", "float8", "text", "text", "jsonb")
_N = len(LEAD_COLUMNS)
_COLS = ", ".join(LEAD_COLUMNS)

# The unique (source, source_id) constraint decides duplicates, so racing pushes create one lead.
INSERT_ONE = f"""
WITH ins AS (
    INSERT INTO lead ({_COLS}, status)
    VALUES ({", ".join(f"${i + 1}::{t}" for i, t in enumerate(_TYPES))}, 'received')
    ON CONFLICT (source, source_id) DO NOTHING
    RETURNING id, received_at, flags
), ev AS (
    INSERT INTO lead_event (lead_id, at, actor, kind, data)
    SELECT id, received_at, ${_N + 1}, 'received', jsonb_build_object('flags', flags) FROM ins
)
SELECT id FROM ins"""

# Many leads in one statement, each with its own actor (pushes of several sources share a group).
# Rows go in key order, so overlapping groups and batches take their locks in the same order and
# cannot deadlock (sorted by PostgreSQL: cheaper there than in the API process).
INSERT_MANY = f"""
WITH rows AS (
    SELECT * FROM unnest({", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TYPES))}, ${_N + 1}::text[])
        AS r({_COLS}, actor)
), ins AS (
    INSERT INTO lead ({_COLS}, status)
    SELECT {_COLS}, 'received' FROM rows ORDER BY source, source_id
    ON CONFLICT (source, source_id) DO NOTHING
    RETURNING id, source, source_id, received_at, flags
), ev AS (
    INSERT INTO lead_event (lead_id, at, actor, kind, data)
    SELECT ins.id, ins.received_at, rows.actor, 'received', jsonb_build_object('flags', ins.flags)
    FROM ins JOIN rows USING (source, source_id)
)
SELECT id, source, source_id FROM ins"""

FIND_ONE = "SELECT id FROM lead WHERE source = $1 AND source_id = $2"
FIND_MANY = """SELECT l.id, l.source, l.source_id FROM lead l
JOIN unnest($1::text[], $2::text[]) AS k(source, source_id) USING (source, source_id)"""

INSERT_REJECTIONS = """INSERT INTO rejection (actor, source, source_id, errors)
SELECT $1, * FROM unnest($2::text[], $3::text[], $4::jsonb[])"""


def _json(value) -> str:
    return orjson.dumps(value).decode()


def lead_row(lead: LeadIn, flags: list[str]) -> tuple:
    s, loc = lead.subject, lead.location
    return (lead.source, lead.source_id, lead.pushed_at, lead.warning_type, lead.fraud_type, lead.fraud_type_raw,
            lead.risk_level, lead.ongoing, s.phone, s.name, s.id_number, s.residency, _json(lead.counterpart),
            None if lead.amount_cny is None else Decimal(str(lead.amount_cny)),
            loc.lon if loc else None, loc.lat if loc else None, loc.crs if loc else None,
            loc.accuracy_m if loc else None, loc.kind if loc else None, loc.address if loc else None, _json(flags))


# Which pushed field each column holds, to name the field when PostgreSQL refuses a value.
FIELD_OF_COLUMN = dict(zip(LEAD_COLUMNS, (
    "source", "source_id", "pushed_at", "warning_type", "fraud_type", "fraud_type", "risk_level", "ongoing",
    "subject.phone", "subject.name", "subject.id_number", "subject.residency", "counterpart", "amount_cny",
    "location.lon", "location.lat", "location.crs", "location.accuracy_m", "location.kind", "flags")))
# Server-side refusals name no argument; the kind of error says which column can cause it.
_FIELD_OF_ERROR = {
    asyncpg.exceptions.NumericValueOutOfRangeError: "amount_cny",
    asyncpg.exceptions.DatetimeFieldOverflowError: "pushed_at",
    asyncpg.exceptions.InvalidDatetimeFormatError: "pushed_at",
}
_ARGUMENT = re.compile(r"query argument \$(\d+)")


@dataclass(frozen=True, slots=True)
class Refused:
    """A row PostgreSQL would not store although validation passed it: the second line of defence."""
    errors: list[dict]


def _column_holding_nul(row: tuple) -> str | None:
    for column, value in zip(LEAD_COLUMNS, row):
        if type(value) is str and ("\x00" in value or (column in ("counterpart", "flags") and "\\u0000" in value)):
            return column
    return None


def refusal(exc: BaseException, row: tuple | None = None) -> Refused:
    """Best effort: the field whose column refused the value, from the column the server names,
    the argument number asyncpg names (client-side encoding) or the kind of server error."""
    field = ""
    m = _ARGUMENT.search(str(exc))
    column = getattr(exc, "column_name", None)  # set by some server errors (and by triggers)
    if column in FIELD_OF_COLUMN:
        field = FIELD_OF_COLUMN[column]
    elif m and 1 <= int(m.group(1)) <= _N:
        field = FIELD_OF_COLUMN[LEAD_COLUMNS[int(m.group(1)) - 1]]
    elif row is not None and (nul := _column_holding_nul(row)):  # "invalid byte sequence ... 0x00" names none
        field = FIELD_OF_COLUMN[nul]
    else:
        field = next((f for kind, f in _FIELD_OF_ERROR.items() if isinstance(exc, kind)), "")
    message = str(exc).split("\n")[0]
    return Refused([{"field": field, "message": f"the database refused this value: {message}"[:300]}])


async def insert_lead(conn, row: tuple, actor: str) -> tuple[int, bool]:
    """One `lead_row` → (lead id, created). Without a transaction of its own: the statement is atomic."""
    lead_id = await conn.fetchval(INSERT_ONE, *row, actor)
    if lead_id is not None:
        return lead_id, True
    # Lost the race or pushed before: a fresh statement sees the committed row.
    return await conn.fetchval(FIND_ONE, row[0], row[1]), False


Stored = tuple[int, bool] | Refused


async def insert_leads(conn, rows: list[tuple], actors: list[str]) -> list[Stored]:
    """Many leads in one statement; → (id, created) or `Refused` for each row, in order. A key met
    again later in `rows` is a duplicate of its first row; a key stored before is a duplicate of
    that lead. Rows are written in key order (INSERT_MANY), so overlapping groups and batches
    cannot deadlock. A row PostgreSQL refuses is found by bisection (each
    try in a savepoint when `conn` is in a transaction) and answered alone; the others are stored."""
    first: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        first.setdefault((row[0], row[1]), i)
    if not first:
        return []
    stored = await _insert_unique(conn, [rows[i] for i in first.values()], [actors[i] for i in first.values()])
    missing = [key for key in first if key not in stored]
    if missing:  # pushed before, or by a push that won the race: a fresh statement sees it
        sources, ids = zip(*missing)
        for r in await conn.fetch(FIND_MANY, list(sources), list(ids)):
            stored[(r[1], r[2])] = (r[0], False)
    answers: list[Stored] = []
    for i, row in enumerate(rows):
        key = (row[0], row[1])
        result = stored[key]
        if isinstance(result, Refused) or first[key] == i:
            answers.append(result)
        else:
            answers.append((result[0], False))
    return answers


async def _insert_unique(conn, rows: list[tuple], actors: list[str]) -> dict[tuple[str, str], Stored]:
    try:
        if conn.is_in_transaction():
            async with conn.transaction():  # a savepoint: a refusal must not abort the caller's transaction
                records = await conn.fetch(INSERT_MANY, *zip(*rows), actors)
        else:
            records = await conn.fetch(INSERT_MANY, *zip(*rows), actors)
    except REFUSED as exc:
        if len(rows) == 1:
            return {(rows[0][0], rows[0][1]): refusal(exc, rows[0])}
        mid = len(rows) // 2
        stored = await _insert_unique(conn, rows[:mid], actors[:mid])
        stored.update(await _insert_unique(conn, rows[mid:], actors[mid:]))
        return stored
    return {(r[1], r[2]): (r[0], True) for r in records}


def storable_text(s: str | None, max_length: int = 200) -> str | None:
    """A refused push's own text (its source_id, a field name) made storable for the record:
    NUL and lone surrogates written as escapes, cut to `max_length`."""
    if s is None:
        return None
    if "\x00" in s:
        s = s.replace("\x00", "\\u0000")
    try:
        s.encode()
    except UnicodeEncodeError:
        s = s.encode("utf-8", "backslashreplace").decode()
    return s[:max_length]


def _storable_errors(errors: list[dict]) -> str:
    return _json([{"field": storable_text(e["field"]), "message": storable_text(e["message"], 500)} for e in errors])


async def insert_rejections(conn, actor: str, rejections: list[tuple[str | None, str | None, list[dict]]]) -> None:
    """Record refused pushes; whatever they carried, the record itself can always be stored."""
    if rejections:
        sources, ids, errors = zip(*rejections)
        await conn.execute(INSERT_REJECTIONS, actor, [storable_text(x) for x in sources],
                           [storable_text(x) for x in ids], [_storable_errors(e) for e in errors])


class GroupWriter:
    """Group commit for single pushes: pushes that arrive while a write is in flight share the
    next INSERT, and each answer still waits for the commit of its own lead. Under load this
    turns one statement per lead into one per group (PostgreSQL spends ~5x less per row);
    a lone push goes out at once. Up to `in_flight` group writes run at once, so the API does not
    sit idle while PostgreSQL commits a group (each on its own connection; rows go in key order,
    so they cannot deadlock). At most `max_pending` pushes wait: past that a push is told
    503 + Retry-After at once (memory stays bounded when PostgreSQL is slow)."""

    def __init__(self, pool, max_group: int = 500, max_pending: int = 5000, in_flight: int = 1):
        self.pool, self.max_group, self.max_pending = pool, max_group, max_pending
        self.in_flight = max(1, in_flight)
        self._pending: list[tuple[tuple, str, asyncio.Future]] = []
        self._writing = 0  # group writes running
        self._tasks: set[asyncio.Task] = set()  # held, so that a running write is never collected

    async def insert(self, row: tuple, actor: str) -> Stored:
        """→ (id, created), or `Refused` when PostgreSQL would not store this row. Raises
        `Unavailable` when the queue is full, and what the database raised when it is away."""
        if len(self._pending) >= self.max_pending:
            raise Unavailable("intake is full; retry shortly", retry_after=1)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((row, actor, future))
        if self._writing < self.in_flight:
            self._writing += 1
            task = loop.create_task(self._run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return await future

    async def _run(self) -> None:
        try:
            while self._pending:
                group, self._pending = self._pending[:self.max_group], self._pending[self.max_group:]
                try:
                    async with acquire(self.pool) as conn:
                        stored = await insert_leads(conn, [row for row, _a, _f in group],
                                                    [actor for _r, actor, _f in group])
                except Exception as exc:  # the database is away, or timed out: every push in the group is told
                    for _row, _actor, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_row, _actor, future), result in zip(group, stored):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writing -= 1
