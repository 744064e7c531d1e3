"""Historic leads (`quanzu import-leads FILE --historic`): last year's warnings loaded for the
records and the KPIs, validated as intake validates a push, stored with `historic = true` — and
never worked (the flow `dispatch.flows.load_historic` places and tiers them, and that is all).

Files: JSON lines in the wire format (contract.md "Leads"), or the monthly .xlsx the platforms
export — one row per lead, the first row its headers, in Chinese or as the wire names
(`subject.phone`, `location.lon`, ...; see `COLUMNS`). Phones and ID numbers should be text cells
(an ID number typed as a number loses its last digits in Excel); a number cell is read as its
integer digits. Times without an offset are the center's (+08:00). Two columns only history has:
`outcome` (处置结果: an Outcome) and `closed_at` (结案时间)."""
from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson
from sqlalchemy import text

from dispatch.enums import Outcome
from dispatch.intake.repository import LEAD_COLUMNS, lead_row
from dispatch.intake.schemas import LeadIn
from dispatch.intake.validation import validate_lead
from service.core import clock
from service.core.errors import FieldError

# wire name → the header names a platform's export may use for it (the wire name itself always works)
COLUMNS: dict[str, tuple[str, ...]] = {
    "source": ("来源", "预警来源"),
    "source_id": ("来源编号", "线索编号", "预警编号"),
    "pushed_at": ("推送时间", "预警时间"),
    "warning_type": ("预警类型",),
    "fraud_type": ("诈骗类型", "涉诈类型"),
    "risk_level": ("风险等级",),
    "ongoing": ("正在进行",),
    "amount_cny": ("金额", "涉案金额"),
    "subject.phone": ("电话", "手机号", "联系电话"),
    "subject.name": ("姓名",),
    "subject.id_number": ("身份证号", "证件号码"),
    "subject.residency": ("户籍", "户籍类型"),
    "counterpart.account": ("对方账户",),
    "counterpart.bank": ("对方银行",),
    "counterpart.phone": ("对方电话",),
    "counterpart.url": ("对方网址",),
    "counterpart.app": ("对方应用",),
    "location.lon": ("经度",),
    "location.lat": ("纬度",),
    "location.crs": ("坐标系",),
    "location.accuracy_m": ("定位精度", "精度"),
    "location.kind": ("定位方式",),
    "location.address": ("地址",),
    "outcome": ("处置结果",),
    "closed_at": ("结案时间",),
}
_HEADER = {h: wire for wire, names in COLUMNS.items() for h in (wire, *names)}
_TEXT = {"source", "source_id", "subject.phone", "subject.id_number", "counterpart.account", "counterpart.phone"}


def _cell(wire: str, v):
    if isinstance(v, datetime):
        return (v if v.tzinfo else v.replace(tzinfo=clock.CENTER_TZ)).isoformat()
    if wire in _TEXT and isinstance(v, int | float) and not isinstance(v, bool):
        return str(int(v))
    if isinstance(v, str):
        v = v.strip()
        return v or None
    return v


def row_to_wire(headers: list[str | None], values: tuple) -> dict:
    """One export row → the wire format (nested `subject`, `location`, `counterpart`)."""
    obj: dict = {}
    for h, v in zip(headers, values):
        wire = _HEADER.get((h or "").strip())
        v = _cell(wire, v) if wire else None
        if wire is None or v is None:
            continue
        if "." in wire:
            group, key = wire.split(".", 1)
            obj.setdefault(group, {})[key] = v
        else:
            obj[wire] = v
    return obj


def read_file(path: Path) -> Iterator[tuple[int, object]]:
    """(line or row number, the lead as pushed) of a .jsonl or .xlsx file; a line that is not JSON
    comes as its text (validation refuses it, naming the line)."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True, data_only=True)
        rows = wb.active.iter_rows(values_only=True)
        headers = [str(h) if h is not None else None for h in next(rows, ())]
        for n, values in enumerate(rows, 2):
            if any(v is not None for v in values):
                yield n, row_to_wire(headers, values)
        wb.close()
        return
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield n, orjson.loads(line)
                except orjson.JSONDecodeError:
                    yield n, line.decode("utf-8", "replace")


def check(obj: object) -> tuple[LeadIn | None, list[str], str | None, datetime | None, list[FieldError]]:
    """Validated as intake validates a push (+ `outcome`, `closed_at`) → (lead, flags, outcome,
    closed_at, errors)."""
    c = validate_lead(obj)
    errors = list(c.errors)
    outcome = closed_at = None
    if isinstance(obj, dict):
        raw = obj.get("outcome")
        if raw is not None:
            if raw in Outcome.__members__:
                outcome = raw
            else:
                errors.append(FieldError("outcome", f"one of {', '.join(Outcome)} or empty"))
        raw = obj.get("closed_at")
        if raw is not None:
            try:
                closed_at = datetime.fromisoformat(raw)
                closed_at = closed_at if closed_at.tzinfo else closed_at.replace(tzinfo=clock.CENTER_TZ)
            except (TypeError, ValueError):
                errors.append(FieldError("closed_at", "not an ISO 8601 time"))
    if errors:
        return None, c.flags, None, None, errors
    return c.lead, c.flags, outcome, closed_at, []


_TYPES = dict(zip(LEAD_COLUMNS, ("text", "text", "timestamptz", "text", "text", "text", "int2", "bool", "text", "text",
                                  "text", "text", "jsonb", "numeric", "float8", "float8", "text", "float8", "text",
                                  "text", "jsonb")))
# One statement per chunk, its text the same every time (compiled once): the rows as arrays, in key
# order, as intake's own INSERT_MANY; a key stored before is skipped. A historic lead was received
# when it was pushed (the KPIs count a lead in the period it arrived).
_INSERT = text(f"""
WITH rows AS (
    SELECT * FROM unnest({", ".join(f"CAST(:{c} AS {t}[])" for c, t in _TYPES.items())})
        AS r({", ".join(LEAD_COLUMNS)})
), ins AS (
    INSERT INTO lead ({", ".join(LEAD_COLUMNS)}, status, historic, received_at)
    SELECT {", ".join(LEAD_COLUMNS)}, 'received', CAST(:historic AS bool),
           CASE WHEN CAST(:historic AS bool) THEN pushed_at ELSE now() END
    FROM rows ORDER BY source, source_id
    ON CONFLICT (source, source_id) DO NOTHING
    RETURNING id, received_at, flags
), ev AS (
    INSERT INTO lead_event (lead_id, at, actor, kind, data)
    SELECT id, received_at, CAST(:actor AS text), 'received',
           jsonb_build_object('flags', flags) || CASE WHEN CAST(:historic AS bool)
                                                    THEN '{{"historic": true}}'::jsonb ELSE '{{}}'::jsonb END
    FROM ins
)
SELECT id FROM ins ORDER BY id""")


def insert_leads(session, leads: list[tuple[LeadIn, list[str]]], actor: str, historic: bool = True) -> list[int]:
    """Store the leads not stored before (source + source_id) → the new ids; each with its
    `received` event (a historic one at its own pushed time)."""
    if not leads:
        return []
    columns = list(zip(*(lead_row(lead, flags) for lead, flags in leads)))
    params = {c: list(v) for c, v in zip(LEAD_COLUMNS, columns)}
    return list(session.execute(_INSERT, {**params, "historic": historic, "actor": actor}).scalars())
