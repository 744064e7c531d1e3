"""SQL for the hot ingest path: one round trip stores leads and their `received` events.

Written as plain SQL on a plain asyncpg connection (service.core.db.make_intake_pool) because intake is measured against a bare
INSERT (bench/ingest.py); everything else goes through SQLModel sessions."""
from __future__ import annotations

import asyncio
from decimal import Decimal

import orjson

from dispatch.schemas import LeadIn
from service.core.errors import UNAVAILABLE

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
INSERT_MANY = f"""
WITH rows AS (
    SELECT * FROM unnest({", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TYPES))}, ${_N + 1}::text[])
        AS r({_COLS}, actor)
), ins AS (
    INSERT INTO lead ({_COLS}, status)
    SELECT {_COLS}, 'received' FROM rows
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


async def insert_lead(conn, row: tuple, actor: str) -> tuple[int, bool]:
    """One `lead_row` → (lead id, created). Without a transaction of its own: the statement is atomic."""
    lead_id = await conn.fetchval(INSERT_ONE, *row, actor)
    if lead_id is not None:
        return lead_id, True
    # Lost the race or pushed before: a fresh statement sees the committed row.
    return await conn.fetchval(FIND_ONE, row[0], row[1]), False


async def insert_leads(conn, rows: list[tuple], actors: list[str]) -> list[tuple[int, bool]]:
    """Many leads in one statement; → (id, created) for each row, in order. A key met again later
    in `rows` is a duplicate of its first row; a key stored before is a duplicate of that lead."""
    first: dict[tuple[str, str], int] = {}
    for i, row in enumerate(rows):
        first.setdefault((row[0], row[1]), i)
    if not first:
        return []
    unique = [rows[i] for i in first.values()]
    columns = list(zip(*unique))
    stored = {(r[1], r[2]): (r[0], True)
              for r in await conn.fetch(INSERT_MANY, *columns, [actors[i] for i in first.values()])}
    missing = [key for key in first if key not in stored]
    if missing:  # pushed before, or by a push that won the race: a fresh statement sees it
        sources, ids = zip(*missing)
        for r in await conn.fetch(FIND_MANY, list(sources), list(ids)):
            stored[(r[1], r[2])] = (r[0], False)
    answers = []
    for i, row in enumerate(rows):
        lead_id, created = stored[(row[0], row[1])]
        answers.append((lead_id, created and first[(row[0], row[1])] == i))
    return answers


async def insert_rejections(conn, actor: str, rejections: list[tuple[str | None, str | None, list[dict]]]) -> None:
    if rejections:
        sources, ids, errors = zip(*rejections)
        await conn.execute(INSERT_REJECTIONS, actor, list(sources), list(ids), [_json(e) for e in errors])


class GroupWriter:
    """Group commit for single pushes: pushes that arrive while a write is in flight share the
    next INSERT, and each answer still waits for the commit of its own lead. Under load this
    turns one statement per lead into one per group (PostgreSQL spends ~5x less per row);
    a lone push goes out at once."""

    def __init__(self, pool, max_group: int = 500):
        self.pool, self.max_group = pool, max_group
        self._pending: list[tuple[tuple, str, asyncio.Future]] = []
        self._task: asyncio.Task | None = None

    async def insert(self, row: tuple, actor: str) -> tuple[int, bool]:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((row, actor, future))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:self.max_group], self._pending[self.max_group:]
            try:
                await self._write(group)
            except UNAVAILABLE as exc:  # the database is away: every push in the group is told so
                for _row, _actor, future in group:
                    if not future.done():
                        future.set_exception(exc)
            except Exception:  # one row PostgreSQL refuses must fail alone: write them one by one
                for row, actor, future in group:
                    if not future.done():
                        try:
                            future.set_result(await self._write_one(row, actor))
                        except Exception as exc:
                            future.set_exception(exc)

    async def _write(self, group: list) -> None:
        async with self.pool.acquire() as conn:
            stored = await insert_leads(conn, [row for row, _a, _f in group], [actor for _r, actor, _f in group])
        for (_row, _actor, future), result in zip(group, stored):
            if not future.done():
                future.set_result(result)

    async def _write_one(self, row: tuple, actor: str) -> tuple[int, bool]:
        async with self.pool.acquire() as conn:
            return await insert_lead(conn, row, actor)
