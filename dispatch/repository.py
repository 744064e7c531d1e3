"""SQL for the hot ingest path: one round trip stores a lead and its `received` event.

Written as plain SQL on the pooled asyncpg connection because intake is measured against a bare
INSERT (bench/ingest.py); everything else goes through SQLModel sessions."""
from __future__ import annotations

from decimal import Decimal

import orjson

from dispatch.schemas import LeadIn

LEAD_COLUMNS = ("source", "source_id", "pushed_at", "warning_type", "fraud_type", "fraud_type_raw", "risk_level",
                "ongoing", "phone", "name", "id_number", "residency", "counterpart", "amount_cny", "loc_lon",
                "loc_lat", "loc_crs", "loc_accuracy_m", "loc_kind", "flags")
_TYPES = ("text", "text", "timestamptz", "text", "text", "text", "int2", "bool", "text", "text", "text", "text",
          "jsonb", "numeric", "float8", "float8", "text", "float8", "text", "jsonb")
_N = len(LEAD_COLUMNS)
_COLS = ", ".join(LEAD_COLUMNS)

# The unique (source, source_id) constraint decides duplicates, so racing pushes create one lead.
INSERT_ONE = f"""
WITH ins AS (
    INSERT INTO lead ({_COLS}, status)
    VALUES ({", ".join(f"${i + 1}::{t}" for i, t in enumerate(_TYPES))}, 'received')
    ON CONFLICT (source, source_id) DO NOTHING
    RETURNING id, received_at
), ev AS (
    INSERT INTO lead_event (lead_id, at, actor, kind, data)
    SELECT id, received_at, ${_N + 1}, 'received', ${_N + 2}::jsonb FROM ins
)
SELECT id FROM ins"""

INSERT_MANY = f"""
WITH ins AS (
    INSERT INTO lead ({_COLS}, status)
    SELECT *, 'received' FROM unnest({", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_TYPES))})
    ON CONFLICT (source, source_id) DO NOTHING
    RETURNING id, source, source_id, received_at, flags
), ev AS (
    INSERT INTO lead_event (lead_id, at, actor, kind, data)
    SELECT id, received_at, ${_N + 1}, 'received', jsonb_build_object('flags', flags) FROM ins
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
            loc.accuracy_m if loc else None, loc.kind if loc else None, _json(flags))


async def insert_lead(conn, lead: LeadIn, flags: list[str], actor: str) -> tuple[int, bool]:
    """→ (lead id, created). Without a transaction of its own: the statement is atomic."""
    row = await conn.fetchrow(INSERT_ONE, *lead_row(lead, flags), actor, _json({"flags": flags}))
    if row is not None:
        return row[0], True
    # Lost the race or pushed before: a fresh statement sees the committed row.
    return await conn.fetchval(FIND_ONE, lead.source, lead.source_id), False


async def insert_leads(conn, rows: list[tuple], actor: str) -> dict[tuple[str, str], tuple[int, bool]]:
    """Many leads in one statement; → {(source, source_id): (id, created)}. Rows must be unique by key."""
    if not rows:
        return {}
    columns = list(zip(*rows))
    created = {(r[1], r[2]): (r[0], True) for r in await conn.fetch(INSERT_MANY, *columns, actor)}
    missing = [r[:2] for r in rows if (r[0], r[1]) not in created]
    if missing:
        sources, ids = zip(*missing)
        for r in await conn.fetch(FIND_MANY, list(sources), list(ids)):
            created[(r[1], r[2])] = (r[0], False)
    return created


async def insert_rejections(conn, actor: str, rejections: list[tuple[str | None, str | None, list[dict]]]) -> None:
    if rejections:
        sources, ids, errors = zip(*rejections)
        await conn.execute(INSERT_REJECTIONS, actor, list(sources), list(ids), [_json(e) for e in errors])
