"""The on-call metrics along a lead's field path: offers, push → offer latency, sockets, closing — each
counted by the process that did it (the worker here, the API process `api_a`), after its commit."""
from __future__ import annotations

import time

import httpx
from sqlalchemy import text

from tests.mobile_api.conftest import open_socket
from tests.mobile_api.test_field import push_and_work
from tests.scrape import value
from tests.waiting import until


async def scrape(base: str) -> str:
    async with httpx.AsyncClient(base_url=base) as http:
        return (await http.get("/metrics")).text


async def test_offer_accept_complete_are_counted_where_they_happen(api_a, client, source_headers, run_worker,
                                                                   make_squad, own_team, commander, sync_engine):
    squad = make_squad(own_team)
    here0, a0 = (await client.get("/metrics")).text, await scrape(api_a.http)
    police = await open_socket(api_a.ws, squad.headers["police"])
    board = await open_socket(api_a.ws, commander, path="/api/v1/board/ws")
    a1 = await scrape(api_a.http)
    assert value(a1, "quanzu_sockets_connected", kind="squad") == value(a0, "quanzu_sockets_connected", kind="squad") + 1
    assert value(a1, "quanzu_sockets_connected", kind="board") == value(a0, "quanzu_sockets_connected", kind="board") + 1

    started = time.monotonic()
    lead_id = await push_and_work(client, source_headers, run_worker)  # the offer is made by this process's worker
    within = time.monotonic() - started
    offer = await police.recv("offer")
    aid = offer["data"]["assignment_id"]
    assert (await police.command(type="accept", assignment_id=aid, id="a1"))["ok"] is True
    async with httpx.AsyncClient(base_url=api_a.http) as http:
        assert (await http.post(f"/api/v1/assignments/{aid}/arrive", headers=squad.headers["police"])).status_code == 200
        r = await http.post(f"/api/v1/assignments/{aid}/complete", headers=squad.headers["police"],
                            json={"outcome": "dissuaded", "met_in_person": True})
        assert r.status_code == 200, r.text
    here1, a2 = (await client.get("/metrics")).text, await scrape(api_a.http)

    def grew(before: str, after: str, name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew(here0, here1, "quanzu_offers_total", event="sent") == 1
    assert grew(here0, here1, "quanzu_push_to_offer_seconds_count") == 1
    assert 0 <= grew(here0, here1, "quanzu_push_to_offer_seconds_sum") <= within
    assert grew(a0, a2, "quanzu_offers_total", event="accepted") == 1
    assert grew(a0, a2, "quanzu_leads_closed_total", outcome="dissuaded") == 1
    assert grew(a0, a2, "quanzu_lead_events_total", kind="arrived") == 1
    with sync_engine.begin() as conn:
        closed = conn.execute(text("SELECT count(*) FROM lead_event WHERE lead_id = :id AND kind = 'closed'"),
                              {"id": lead_id}).scalar()
    assert closed == 1

    for s in (police, board):
        await s.close()

    async def sockets_back() -> bool:
        now = await scrape(api_a.http)
        return all(value(now, "quanzu_sockets_connected", kind=k) == value(a0, "quanzu_sockets_connected", kind=k)
                   for k in ("squad", "board"))
    await until(sockets_back, 15, "the sockets' gauge back where it was")
