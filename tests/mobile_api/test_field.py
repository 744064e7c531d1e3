"""Field dispatch end to end: real API processes, real websocket clients, real PostgreSQL and Redis."""
from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
from sqlalchemy import select, text

from dispatch.models import Assignment, Lead, LeadEvent, OfferDelivery, SmsMessage, Visit
from service.core import clock
from tests.factories import make_lead
from tests.mobile_api.conftest import open_socket
from workers import tasks


def p0_lead() -> dict:
    return make_lead(warning_type="fund_transfer", risk_level=1, amount_cny=5000)


async def push_and_work(client, source_headers, run_worker, lead: dict | None = None) -> int:
    r = await client.post("/api/v1/leads", json=lead or p0_lead(), headers=source_headers)
    assert r.status_code == 202, r.text
    await run_worker()  # place, tier (P0 → visit), dispatch the visit
    return r.json()["id"]


def rows(sync_engine, model, *where):
    from service.core.db import sync_session
    with sync_session(sync_engine) as s:
        return list(s.execute(select(model).where(*where).order_by(model.id)).scalars())


async def test_offer_accept_arrive_complete(api_a, client, source_headers, run_worker, make_squad, own_team,
                                            sync_engine, commander):
    squad = make_squad(own_team)
    police = await open_socket(api_a.ws, squad.headers["police"])
    aux = await open_socket(api_a.ws, squad.headers["auxiliary"])
    board = await open_socket(api_a.ws, commander, path="/api/v1/board/ws")
    lead_id = await push_and_work(client, source_headers, run_worker)

    offer = await police.recv("offer")
    assert offer["seq"] >= 1 and offer["data"]["lead"]["id"] == lead_id
    assert offer["data"]["reason"] == "own_beat" and offer["data"]["expires_at"]
    assert "****" in offer["data"]["lead"]["subject"]["phone"] and "id_number" not in offer["data"]["lead"]["subject"]
    aid = offer["data"]["assignment_id"]
    await police.ack(offer["seq"])
    aux_offer = await aux.recv("offer")
    assert aux_offer["data"]["assignment_id"] == aid

    result = await police.command(type="accept", assignment_id=aid, id="a1")
    assert result["ok"] is True and result["data"]["status"] == "accepted"
    for sock in (police, aux):
        upd = await sock.recv("assignment.updated")
        assert upd["data"]["id"] == aid and upd["data"]["accepted_by"] == squad.name("police")

    async with httpx.AsyncClient(base_url=api_a.http) as http:
        r = await http.post(f"/api/v1/assignments/{aid}/arrive", headers=squad.headers["auxiliary"])
        assert r.status_code == 200 and r.json()["status"] == "arrived"
        r = await http.post(f"/api/v1/assignments/{aid}/complete", headers=squad.headers["police"], json={
            "outcome": "dissuaded", "met_in_person": True, "note": "已劝阻", "loss_cny": 0, "saved_cny": 5000,
            "checklist": {"looked": ["call_log", "apps"], "asked": ["who"], "protected": ["stop_payment"]}})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "completed"
        # Completing twice is a state conflict, not a 500.
        again = await http.post(f"/api/v1/assignments/{aid}/complete", headers=squad.headers["police"],
                                json={"outcome": "dissuaded", "met_in_person": True})
        assert again.status_code == 409 and again.json()["error"] == "conflict"
        mine = (await http.get("/api/v1/assignments?mine=true", headers=squad.headers["grid_worker"])).json()
        assert [a["id"] for a in mine["items"]] == [aid]

    (a,) = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    assert (a.status, a.team_code, a.accepted_by, a.outcome, a.met_in_person, float(a.saved_cny)) == \
           ("completed", own_team, squad.name("police"), "dissuaded", True, 5000.0)
    assert a.choice["reason"] == "own_beat" and "next" in a.choice
    (v,) = rows(sync_engine, Visit, Visit.lead_id == lead_id)
    assert (v.status, v.outcome, v.met_in_person) == ("done", "dissuaded", True)
    (lead,) = rows(sync_engine, Lead, Lead.id == lead_id)
    assert (lead.status, lead.outcome, lead.assigned_team) == ("closed", "dissuaded", own_team)
    kinds = [e.kind for e in rows(sync_engine, LeadEvent, LeadEvent.lead_id == lead_id)]
    assert kinds[-5:] == ["offered", "accepted", "arrived", "visit_completed", "closed"]
    deliveries = {d.username: d for d in rows(sync_engine, OfferDelivery, OfferDelivery.assignment_id == aid)}
    assert set(deliveries) == {squad.name(r) for r in ("police", "auxiliary", "grid_worker")}
    assert deliveries[squad.name("police")].acked_at is not None
    assert deliveries[squad.name("auxiliary")].pushed_at is not None
    assert deliveries[squad.name("grid_worker")].pushed_at is None  # never connected
    # Members were online: no SMS fallback.
    assert rows(sync_engine, SmsMessage, SmsMessage.assignment_id == aid) == []
    seen = []
    while not any(m["data"].get("outcome") == "dissuaded" for m in seen):
        seen.append(await board.recv("lead.updated"))
    assert all(m["data"]["lead_id"] == lead_id for m in seen)
    for s in (police, aux, board):
        await s.close()
