"""The second line of defence: a lead PostgreSQL refuses although validation passed it fails alone,
with a 422 / `rejected` naming its field and a recorded rejection; its batch mates and group
mates are stored and answered as usual.

Validation now refuses every value we know PostgreSQL cannot hold, so the refusals here come
from PostgreSQL itself: rows built directly (values validation never lets through), and, through
the API, a trigger that refuses some names the way a narrower column would (SQLSTATE 22001,
string_data_right_truncation). Nothing of ours is patched."""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import asyncpg
import pytest
from sqlalchemy import func, select, text

from dispatch.intake import repository
from dispatch.intake.validation import validate_lead
from dispatch.models import Lead, Rejection
from service.core.settings import plain_url
from tests.factories import make_lead

pytestmark = pytest.mark.usefixtures("district", "clean")

REFUSED_NAME = "pg-refuses-this-name"


@pytest.fixture
def refusing_trigger(sync_engine):
    with sync_engine.begin() as conn:
        conn.execute(text(f"""
            CREATE FUNCTION test_refuse_name() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.name = '{REFUSED_NAME}' THEN
                    RAISE EXCEPTION 'value too long for type character varying(8)'
                        USING ERRCODE = 'string_data_right_truncation', COLUMN = 'name';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_refuse_name BEFORE INSERT ON lead FOR EACH ROW EXECUTE FUNCTION test_refuse_name();
        """))
    yield
    with sync_engine.begin() as conn:
        conn.execute(text("DROP TRIGGER test_refuse_name ON lead; DROP FUNCTION test_refuse_name()"))


def _rows(n: int) -> list[tuple]:
    return [repository.lead_row(validate_lead(make_lead()).lead, []) for _ in range(n)]


def _with(row: tuple, column: str, value) -> tuple:
    r = list(row)
    r[repository.LEAD_COLUMNS.index(column)] = value
    return tuple(r)


async def test_rows_postgresql_refuses_fail_alone_in_a_1000_row_insert(settings, sync_engine):
    """Values no validator lets through, written straight to the repository inside one transaction:
    the refused rows come back Refused naming their field; the other 996 are stored."""
    rows = _rows(1000)
    bad = {10: ("amount_cny", Decimal("1e13"), "amount_cny"),  # Numeric(14, 2) overflows (server side)
           400: ("name", "a\x00b", "subject.name"),  # NUL: refused by PostgreSQL's text input
           401: ("pushed_at", datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "pushed_at"),  # no UTC year
           999: ("counterpart", '{"a": "\\u0000"}', "counterpart")}  # JSONB refuses \u0000
    for i, (column, value, _field) in bad.items():
        rows[i] = _with(rows[i], column, value)
    conn = await asyncpg.connect(plain_url(settings.database_url))
    try:
        async with conn.transaction():
            stored = await repository.insert_leads(conn, rows, ["test"] * len(rows))
    finally:
        await conn.close()
    for i, (_column, _value, field) in bad.items():
        assert isinstance(stored[i], repository.Refused), i
        assert stored[i].errors[0]["field"] == field, stored[i].errors
    good = [s for i, s in enumerate(stored) if i not in bad]
    assert all(created for _id, created in good)
    with sync_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Lead)).scalar() == 996
        assert set(conn.execute(select(Lead.id)).scalars()) == {lead_id for lead_id, _c in good}


def _leads_some_refused(n: int, bad: set[int]) -> list[dict]:
    leads = [make_lead() for _ in range(n)]
    for i in bad:
        leads[i]["subject"]["name"] = REFUSED_NAME
    return leads


def _tiered(sync_engine) -> dict[str, int]:
    with sync_engine.connect() as conn:
        return dict(conn.execute(select(Lead.status, func.count()).group_by(Lead.status)).all())


async def test_a_1000_lead_batch_with_leads_postgresql_refuses(client, source_headers, commander, sync_engine,
                                                              run_worker, refusing_trigger):
    bad = {3, 500, 998}
    leads = _leads_some_refused(1000, bad)
    r = await client.post("/api/v1/leads/batch", json={"leads": leads}, headers=source_headers)
    assert r.status_code == 200
    results = r.json()["results"]
    assert {i for i, x in enumerate(results) if x["status"] == "rejected"} == bad
    for i in bad:
        assert results[i]["errors"][0]["field"] == "subject.name"
    assert all(x["status"] == "accepted" for i, x in enumerate(results) if i not in bad)
    listed = (await client.get("/api/v1/rejections", headers=commander)).json()
    assert listed["total"] == 3 and listed["by_field"] == {"subject.name": 3}
    assert {x["source_id"] for x in listed["items"]} == {leads[i]["source_id"] for i in bad}
    await run_worker()
    assert _tiered(sync_engine) == {"tiered": 997}
    with sync_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Lead).where(Lead.name == REFUSED_NAME)).scalar() == 0


async def test_the_same_leads_pushed_one_by_one_among_good_ones(client, source_headers, commander, sync_engine,
                                                                run_worker, refusing_trigger):
    """Concurrent single pushes share group writes; the refused ones get 422 alone."""
    bad = {5, 30, 59}
    leads = _leads_some_refused(60, bad)
    answers = await asyncio.gather(*[client.post("/api/v1/leads", json=x, headers=source_headers) for x in leads])
    assert [a.status_code for a in answers] == [422 if i in bad else 202 for i in range(60)]
    for i in bad:
        assert answers[i].json() == {"error": "validation_error", "detail": [
            {"field": "subject.name", "message": answers[i].json()["detail"][0]["message"]}]}
    with sync_engine.connect() as conn:
        rejected = list(conn.execute(select(Rejection.source_id, Rejection.errors)).all())
        stored = dict(conn.execute(select(Lead.source_id, Lead.id)).all())
    assert {s for s, _e in rejected} == {leads[i]["source_id"] for i in bad}
    assert stored == {leads[i]["source_id"]: answers[i].json()["id"] for i in range(60) if i not in bad}
    assert (await client.get("/api/v1/rejections", headers=commander)).json()["by_field"] == {"subject.name": 3}
    await run_worker()
    assert _tiered(sync_engine) == {"tiered": 57}


def _deep(n: int) -> dict:
    v: object = "x"
    for _ in range(n):
        v = {"k": v}
    return v  # type: ignore[return-value]


@pytest.mark.parametrize("changes", [
    {"amount_cny": 999999999999.99}, {"amount_cny": 0.004},
    {"pushed_at": "1970-01-01T00:00:00+00:00"}, {"pushed_at": "2199-12-31T23:59:59+23:59"},
    {"pushed_at": "2026-10-01T00:00:00-23:59"}, {"pushed_at": "2026-10-01T00:00:00.999999"},
    {"subject": {"name": "名" * 100, "id_number": "X" * 32, "phone": "+86 " + "139-1234-5678".ljust(36)}},
    {"counterpart": _deep(7)}, {"counterpart": {str(i): "值" for i in range(200)}},
    {"counterpart": {"k": "x" * 16_000}}, {"counterpart": {"big": 2**63 - 1, "small": -(2**63) + 1, "f": 9e18, "tiny": 1e-300, "neg": -9e18}},
    {"location": {"lon": -180, "lat": 90, "crs": "bd09", "accuracy_m": 1_000_000, "kind": "cell"}},
    {"source_id": "S" * 128, "fraud_type": "新型" * 200},
])
async def test_the_extremes_validation_accepts_are_stored(client, source_headers, commander, changes):
    """Every accepted extreme fits its column: 202, and read back as sent."""
    lead = make_lead(**{k: v for k, v in changes.items() if k not in ("subject", "location")},
                     **({"subject": changes["subject"]} if "subject" in changes else {}),
                     **({"location": changes["location"]} if "location" in changes else {}))
    r = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    assert r.status_code == 202, r.text
    got = (await client.get(f"/api/v1/leads/{r.json()['id']}", headers=commander)).json()
    if "amount_cny" in changes:
        assert got["amount_cny"] == round(changes["amount_cny"], 2)
    if "pushed_at" in changes:
        sent = datetime.fromisoformat(changes["pushed_at"])
        sent = sent if sent.tzinfo else sent.replace(tzinfo=timezone(timedelta(hours=8)))
        assert datetime.fromisoformat(got["pushed_at"]) == sent
    if "counterpart" in changes:
        assert got["counterpart"] == changes["counterpart"]
    if "subject" in changes:
        assert got["subject"]["name"] == changes["subject"]["name"]
