"""Nothing stalls, nothing grows without bound, no parameter reaches the database unchecked."""
from __future__ import annotations

import asyncio
import base64

import asyncpg
import pytest
from sqlalchemy import func, select

from dispatch.intake import repository
from dispatch.intake.validation import validate_lead
from dispatch.models import Lead
from service.core.errors import Unavailable
from service.core.settings import plain_url
from tests.factories import make_lead
from tests.waiting import lock_waiters, until

pytestmark = pytest.mark.usefixtures("district", "clean")


def _row(lead: dict):
    return repository.lead_row(validate_lead(lead).lead, [])


async def _hold_key(settings, lead: dict) -> asyncpg.Connection:
    """Another connection inserts `lead` and keeps its transaction open: a push of the same key
    must wait for that lock."""
    conn = await asyncpg.connect(plain_url(settings.database_url))
    await conn.execute("BEGIN")
    await repository.insert_lead(conn, _row(lead), "test:holder")
    return conn


async def test_a_push_blocked_behind_a_lock_fails_fast_with_503_and_the_next_ones_go_through(
        client, source_headers, settings, sync_engine):
    blocked = make_lead()
    holder = await _hold_key(settings, blocked)
    try:
        r = await asyncio.wait_for(client.post("/api/v1/leads", json=blocked, headers=source_headers), 60)
        assert r.status_code == 503 and r.json()["error"] == "unavailable" and "retry-after" in r.headers
        others = await asyncio.gather(*[client.post("/api/v1/leads", json=make_lead(), headers=source_headers)
                                        for _ in range(5)])
        assert [o.status_code for o in others] == [202] * 5
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    with sync_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Lead)).scalar() == 5


async def test_a_batch_blocked_behind_a_lock_is_503(client, source_headers, settings, sync_engine):
    leads = [make_lead() for _ in range(20)]
    holder = await _hold_key(settings, leads[7])
    try:
        r = await client.post("/api/v1/leads/batch", json={"leads": leads}, headers=source_headers)
        assert r.status_code == 503 and "retry-after" in r.headers
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    with sync_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Lead)).scalar() == 0  # the batch is one transaction


async def _first_stuck(writer: repository.GroupWriter, holder, blocked: dict, sync_engine) -> asyncio.Future:
    """The writer's first group in flight, waiting on the lock `holder` keeps on `blocked`'s key."""
    first = asyncio.ensure_future(writer.insert(_row(blocked), "t"))
    await until(lambda: lock_waiters(sync_engine, holder.get_server_pid()), 10,
                "the first group in flight, waiting on the holder's lock")
    return first


async def test_the_group_writer_queue_is_bounded(app, settings, sync_engine):
    """While a group is stuck, at most max_pending pushes wait; the next is refused at once."""
    blocked = make_lead()
    holder = await _hold_key(settings, blocked)
    writer = repository.GroupWriter(app.state.intake_pool, max_pending=3)
    try:
        first = await _first_stuck(writer, holder, blocked, sync_engine)
        waiting = [asyncio.ensure_future(writer.insert(_row(make_lead()), "t")) for _ in range(3)]
        await until(lambda: len(writer._pending) == 3, 10, lambda: f"3 pushes queued behind it, not {len(writer._pending)}")
        with pytest.raises(Unavailable):
            await writer.insert(_row(make_lead()), "t")
        assert len(writer._pending) == 3
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    await asyncio.gather(first, return_exceptions=True)  # stored once the lock went, or timed out: both fine
    assert all(created for _id, created in await asyncio.gather(*waiting))


async def test_a_second_group_write_goes_out_while_the_first_waits(app, settings, sync_engine):
    """With two writes in flight (the app's setting), a push arriving while a group is stuck is
    stored at once; the stuck one is stored once the lock goes."""
    blocked = make_lead()
    holder = await _hold_key(settings, blocked)
    writer = repository.GroupWriter(app.state.intake_pool, in_flight=2)
    try:
        first = await _first_stuck(writer, holder, blocked, sync_engine)
        lead_id, created = await asyncio.wait_for(writer.insert(_row(make_lead()), "t"), 10)
        assert created and not first.done()
    finally:
        await holder.execute("ROLLBACK")
        await holder.close()
    _id, created = await asyncio.wait_for(first, 30)
    assert created and writer._writing == 0
    with sync_engine.connect() as conn:
        assert conn.execute(select(Lead.id).where(Lead.source_id == blocked["source_id"])).scalar() == _id


@pytest.mark.parametrize("path", [
    "/api/v1/leads?street=a%00b", "/api/v1/leads?beat=%00", "/api/v1/rejections?source=x%00",
    "/api/v1/leads?street=" + "x" * 65, "/api/v1/leads?since=0001-01-01T00:00:00%2B05:00",
    "/api/v1/leads?until=9999-12-31T23:59:59-05:00", "/api/v1/geo/locate?lon=nan&lat=36",
    "/api/v1/geo/locate?lon=120&lat=inf", "/api/v1/leads/9223372036854775808", "/api/v1/leads/0",
])
async def test_query_and_path_values_no_column_holds_are_422(client, commander, path):
    r = await client.get(path, headers=commander)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error" and r.json()["detail"][0]["field"]


@pytest.mark.parametrize("number", ["9223372036854775808", "-1", "0", "1" * 30, "abc"])
async def test_cursors_no_column_holds_are_400(client, commander, number):
    cursor = base64.urlsafe_b64encode(number.encode()).decode()
    r = await client.get(f"/api/v1/leads?cursor={cursor}", headers=commander)
    assert r.status_code == 400 and r.json()["detail"] == [{"field": "cursor",
                                                            "message": "not a cursor this API gave out"}]


@pytest.mark.parametrize("form", [{"username": "a\x00b", "password": "p"}, {"username": "u", "password": "p\x00"},
                                  {"username": "u" * 151, "password": "p"}, {"username": "u"}])
async def test_login_form_values_no_column_holds_are_422(client, form):
    r = await client.post("/api/v1/auth/token", data=form)
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


async def test_login_still_works_with_the_oauth2_form(client, make_user):
    headers = make_user("operator")
    r = await client.post("/api/v1/auth/token", data={"username": headers["X-Username"], "password": "pw-123456",
                                                      "grant_type": "password", "scope": ""})
    assert r.status_code == 200 and r.json()["token_type"] == "bearer" and r.json()["role"] == "operator"
