"""The queue of all open work and the desk's claims, through the API on real PostgreSQL and Redis."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from service.core import clock
from tests.factories import INSIDE, make_lead
from tests.ladder.helpers import push, received_at, tiered

pytestmark = pytest.mark.usefixtures("district", "clean")


async def queue(client, headers, **params) -> dict:
    r = await client.get("/api/v1/queue", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


async def test_the_queue_orders_by_tier_then_time_left_and_follows_the_step(client, source_headers, make_user,
                                                                           run_worker, sync_engine):
    operator = make_user("operator")
    p3 = await tiered(client, source_headers, run_worker, "P3")
    p1 = await tiered(client, source_headers, run_worker, "P1")
    p0 = await tiered(client, source_headers, run_worker, "P0")
    q = await queue(client, operator)
    ids = [i["id"] for i in q["items"]]
    assert ids == [p0, p1, p3]
    assert q["total"] == 3 and q["by_tier"] == {"P0": 1, "P1": 1, "P3": 1}
    first = q["items"][0]
    t0 = received_at(sync_engine, p0)
    assert first["step"] == "sign" and first["step_due_at"].startswith(clock.iso(t0 + timedelta(minutes=2))[:19])
    assert "****" in first["subject"]["phone"]  # a list: masked
    assert {s["step"] for s in first["steps"]} >= {"sign", "first_call"}

    # signed → the sign step stops counting; the first call is next, then a failed call makes it a retry
    assert (await client.post(f"/api/v1/leads/{p1}/sign", headers=operator)).status_code == 200
    (item,) = (await queue(client, operator, lead=p1))["items"]
    assert item["step"] == "first_call" and "sign" not in {s["step"] for s in item["steps"]}
    r = await client.post(f"/api/v1/leads/{p1}/calls", headers=operator, json={"result": "no_answer"})
    assert r.status_code == 201
    (item,) = (await queue(client, operator, lead=p1))["items"]
    assert item["step"] == "call_retry" and item["calls"] == 1
    # a lead dissuaded by phone is no longer open work
    r = await client.post(f"/api/v1/leads/{p1}/calls", headers=operator,
                          json={"result": "connected", "outcome": "dissuaded"})
    assert r.status_code == 201
    assert [i["id"] for i in (await queue(client, operator))["items"]] == [p0, p3]
    assert (await queue(client, operator, step="sign"))["items"][0]["id"] == p0
    assert [i["id"] for i in (await queue(client, operator, tier="P3"))["items"]] == [p3]


async def test_paging_walks_every_open_lead_once_and_bad_input_is_named(client, source_headers, make_user,
                                                                        run_worker):
    operator = make_user("operator")
    ids = set()
    for _ in range(5):
        ids.add(await push(client, source_headers, make_lead(risk_level=3)))
    await run_worker()
    seen, cursor = [], None
    while True:
        page = await queue(client, operator, limit=2, **({"cursor": cursor} if cursor else {}))
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == len(set(seen))
    bad = await client.get("/api/v1/queue", params={"cursor": "nonsense!"}, headers=operator)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "cursor"
    bad = await client.get("/api/v1/queue", params={"step": "dancing"}, headers=operator)
    assert bad.status_code == 422 and "step" in bad.text
    squad = make_user("police", INSIDE["team"])
    assert (await client.get("/api/v1/queue", headers=squad)).status_code == 403


async def test_every_open_p0_is_in_the_queue_among_2000_open_leads(client, make_user, sync_engine, district):
    """2,000 open leads (written as the workers leave them), 25 of them P0 and received first: all
    P0 on the first page, and the whole queue pages through every one."""
    operator = make_user("operator")
    with sync_engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO lead (source, source_id, pushed_at, received_at, warning_type, fraud_type, risk_level,
                              phone, status, tier, flags, counterpart, attempts, needs_call, updated_at, ongoing,
                              residency)
            SELECT 'national_platform', 'bulk-' || g, now(), now() - (g || ' seconds')::interval,
                   CASE WHEN g % 80 = 0 THEN 'fund_transfer' ELSE 'fraud_call' END, 'other',
                   CASE WHEN g % 80 = 0 THEN 1 ELSE 3 END, '138' || lpad(g::text, 8, '0'), 'tiered',
                   CASE WHEN g % 80 = 0 THEN 'P0' ELSE 'P3' END, '[]', '{}', 0, g % 80 = 0, now(), false,
                   'unknown'
            FROM generate_series(1, 2000) g"""))
        conn.execute(text("""
            INSERT INTO lead_deadline (lead_id, name, due_at, state, created_at)
            SELECT id, 'sign', received_at + CASE WHEN tier = 'P0' THEN interval '2 minutes' ELSE interval '2 hours' END,
                   'pending', now() FROM lead WHERE source_id LIKE 'bulk-%'"""))
    first = await queue(client, operator, limit=100)
    assert first["total"] == 2000 and first["by_tier"]["P0"] == 25
    assert [i["tier"] for i in first["items"][:25]] == ["P0"] * 25 and first["items"][25]["tier"] == "P3"
    assert all(i["step"] == "sign" for i in first["items"])
    seen, cursor = len(first["items"]), first["next_cursor"]
    while cursor:
        page = await queue(client, operator, limit=1000, cursor=cursor)
        seen += len(page["items"])
        cursor = page["next_cursor"]
    assert seen == 2000


async def test_the_desk_gives_each_operator_a_different_lead_until_the_call(client, source_headers, make_user,
                                                                            run_worker):
    one, two = make_user("operator"), make_user("operator")
    a = await tiered(client, source_headers, run_worker, "P1")
    b = await tiered(client, source_headers, run_worker, "P2")
    got1 = (await client.post("/api/v1/calls/next", headers=one)).json()
    assert got1["item"]["id"] == a and got1["item"]["subject"]["phone"].isdigit()  # full: the operator dials
    assert got1["claimed_until"]
    again = (await client.post("/api/v1/calls/next", headers=one)).json()
    assert again["item"]["id"] == a  # still mine
    got2 = (await client.post("/api/v1/calls/next", headers=two)).json()
    assert got2["item"]["id"] == b  # never the lead the first operator holds
    assert (await client.post("/api/v1/calls/next", headers=make_user("operator"))).json()["item"] is None
    listed = {i["id"]: i for i in (await client.get("/api/v1/calls/queue", headers=two)).json()["items"]}
    assert listed[a]["claimed_by"] == one["X-Username"]
    # a failed call ends the claim, and the lead waits for its retry time
    r = await client.post(f"/api/v1/leads/{a}/calls", headers=one, json={"result": "busy"})
    assert r.status_code == 201
    listed = {i["id"]: i for i in (await client.get("/api/v1/calls/queue", headers=two)).json()["items"]}
    assert listed[a]["claimed_by"] is None and listed[a]["next_call_at"]
    assert (await client.post("/api/v1/calls/next", headers=make_user("operator"))).json()["item"] is None
    with clock.frozen(clock.now() + timedelta(minutes=11)):
        assert (await client.post("/api/v1/calls/next", headers=one)).json()["item"]["id"] == a
    # releasing someone else's claim is refused; one's own is fine
    r = await client.delete(f"/api/v1/leads/{b}/claim", headers=one)
    assert r.status_code == 409
    assert (await client.delete(f"/api/v1/leads/{b}/claim", headers=two)).status_code == 200
    assert (await client.delete("/api/v1/leads/999999999/claim", headers=two)).status_code == 404


async def test_every_center_action_tells_the_screens(client, source_headers, make_user, run_worker, redis_url):
    """A call, a sign-off, a close: each a `lead.updated` on the board stream, so every other screen's
    queue row follows at once (not at its next full read)."""
    import orjson
    from redis import Redis

    from dispatch.outbox import BOARD, stream_key

    operator = make_user("operator")
    lead_id = await tiered(client, source_headers, run_worker, "P1")
    redis = Redis.from_url(redis_url)

    def board_updates() -> list[dict]:
        msgs = [orjson.loads(m[b"m"]) for _id, m in redis.xrange(stream_key(BOARD))]
        return [m["data"] for m in msgs if m["type"] == "lead.updated" and m["data"].get("lead_id") == lead_id]

    seen = len(board_updates())
    for path, body in ((f"/api/v1/leads/{lead_id}/sign", None), (f"/api/v1/leads/{lead_id}/calls", {"result": "busy"}),
                       (f"/api/v1/leads/{lead_id}/close", {"outcome": "false_alarm"})):
        r = await client.post(path, headers=operator, json=body)
        assert r.status_code in (200, 201), r.text
        updates = board_updates()
        assert len(updates) > seen, path
        seen = len(updates)
    assert updates[-1]["status"] == "closed"
