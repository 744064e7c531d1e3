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
from tests.waiting import until
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
    assert (await board.recv("lead.created"))["data"] == {"lead_ids": [lead_id]}

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
        # A check list item the list does not have is a 422 naming it, nothing done; so is one whose
        # name PostgreSQL could not even store (a lone surrogate: sent as raw JSON text, the escape
        # \ud800 is valid JSON that no UTF-8 string can hold), and the old list shape.
        for checklist, field in ((b'{"ask": {"\\ud800": true}}', "checklist.ask"),
                                 (b'{"look": {"call_log": true}}', "checklist.look.call_log"),
                                 (b'{"looked": ["call_log"]}', "checklist.looked"),
                                 (b'{"protect": {"payment_stopped": "maybe"}}', "checklist.protect.payment_stopped")):
            bad = await http.post(f"/api/v1/assignments/{aid}/complete",
                                  headers={**squad.headers["police"], "Content-Type": "application/json"},
                                  content=b'{"outcome": "dissuaded", "met_in_person": true, "checklist": %s}' % checklist)
            assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == field, bad.text
        r = await http.post(f"/api/v1/assignments/{aid}/complete", headers=squad.headers["police"], json={
            "outcome": "dissuaded", "met_in_person": True, "note": "已劝阻", "loss_cny": 0, "saved_cny": 5000,
            "checklist": {"look": {"call_sms_logs": True, "fraud_apps": True}, "ask": {"who_asked": True},
                          "protect": {"payment_stopped": True}}})
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
    # the check list is kept whole: every item of 四查看·三询问·一保护, the ones left out false
    assert a.checklist == {"look": {"call_sms_logs": True, "chat_apps": False, "fraud_apps": True,
                                    "large_transfers": False},
                           "ask": {"who_asked": True, "why": False, "to_whom": False},
                           "protect": {"payment_stopped": True, "app_uninstalled": False, "family_informed": False}}
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


def neighbours(sync_engine, beat: str) -> list[str]:
    from dispatch.field.squads import adjacency
    from service.core.db import sync_session
    with sync_session(sync_engine) as s:
        return [f"T{b}" for b in adjacency(s)[beat]]


async def test_decline_and_timeout_reassign_then_back_to_the_center(api_a, client, source_headers, run_worker,
                                                                    make_squad, own_team, sync_engine, commander):
    from tests.factories import INSIDE
    near = neighbours(sync_engine, INSIDE["beat"])
    assert len(near) >= 2
    own, n1, n2 = make_squad(own_team), make_squad(near[0]), make_squad(near[1])
    sockets = {code: await open_socket(api_a.ws, sq.headers["police"]) for code, sq in
               ((own_team, own), (near[0], n1), (near[1], n2))}
    board = await open_socket(api_a.ws, commander, path="/api/v1/board/ws")
    lead_id = await push_and_work(client, source_headers, run_worker)

    first = await sockets[own_team].recv("offer")
    async with httpx.AsyncClient(base_url=api_a.http) as http:
        r = await http.post(f"/api/v1/assignments/{first['data']['assignment_id']}/decline",
                            headers=own.headers["police"], json={"reason": "在处置另一警情"})
        assert r.status_code == 200 and r.json()["status"] == "declined"
    withdrawn = await sockets[own_team].recv("offer.withdrawn")
    assert withdrawn["data"] == {"assignment_id": first["data"]["assignment_id"], "reason": "declined",
                                 "status": "declined"}
    asked = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)[-1].team_code
    assert asked in near[:2]  # the nearer of the adjacent squads
    second = await sockets[asked].recv("offer")
    assert second["data"]["reason"] == "adjacent_beat" and second["data"]["attempt"] == 2

    clock.advance(timedelta(seconds=61))  # nobody answers the second squad
    assert tasks.field_sweep()["expired"] == 1
    assert (await sockets[asked].recv("offer.withdrawn"))["data"]["reason"] == "expired"
    last = next(c for c in near[:2] if c != asked)
    third = await sockets[last].recv("offer")
    assert third["data"]["attempt"] == 3

    clock.advance(timedelta(seconds=61))
    assert tasks.field_sweep()["expired"] == 1
    alert = await board.recv("lead.updated")
    while alert["data"].get("alert") != "no_squad":
        alert = await board.recv("lead.updated")
    assert alert["data"]["lead_id"] == lead_id and alert["data"]["reason"] == "max_squads"

    got = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    assert [(a.team_code, a.attempt, a.status) for a in got] == [
        (own_team, 1, "declined"), (asked, 2, "expired"), (last, 3, "expired")]
    assert got[0].declined_reason == "在处置另一警情"
    assert got[1].choice["reason"] == "adjacent_beat" and own_team not in [c["team_code"] for c in got[1].choice["next"]]
    (v,) = rows(sync_engine, Visit, Visit.lead_id == lead_id)
    assert v.status == "failed"
    kinds = [e.kind for e in rows(sync_engine, LeadEvent, LeadEvent.lead_id == lead_id)]
    assert [k for k in kinds if k in ("offered", "declined", "expired", "visit_failed")] == [
        "offered", "declined", "offered", "expired", "offered", "expired", "visit_failed"]
    for s in (*sockets.values(), board):
        await s.close()


async def test_the_accept_race_has_one_winner(api_a, client, source_headers, run_worker, make_squad, own_team,
                                              sync_engine):
    squad = make_squad(own_team)
    police = await open_socket(api_a.ws, squad.headers["police"])
    aux = await open_socket(api_a.ws, squad.headers["auxiliary"])
    # Over REST: two members at once → one 200, one 409.
    lead_id = await push_and_work(client, source_headers, run_worker)
    aid = (await police.recv("offer"))["data"]["assignment_id"]
    assert (await aux.recv("offer"))["data"]["assignment_id"] == aid
    async with httpx.AsyncClient(base_url=api_a.http) as h1, httpx.AsyncClient(base_url=api_a.http) as h2:
        answers = await asyncio.gather(*(h.post(f"/api/v1/assignments/{aid}/accept", headers=squad.headers[role])
                                         for h, role in ((h1, "police"), (h2, "grid_worker"))))
    assert sorted(r.status_code for r in answers) == [200, 409]
    assert [r.json()["error"] for r in answers if r.status_code == 409] == ["conflict"]
    (a,) = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    winner = next(r for r in answers if r.status_code == 200).json()["accepted_by"]
    assert a.status == "accepted" and a.accepted_by == winner
    assert [e.kind for e in rows(sync_engine, LeadEvent, LeadEvent.lead_id == lead_id)].count("accepted") == 1

    # Over the socket: two members at once → one ok, one ok:false.
    lead2 = await push_and_work(client, source_headers, run_worker)
    aid2 = (await police.recv("offer"))["data"]["assignment_id"]
    assert (await aux.recv("offer"))["data"]["assignment_id"] == aid2
    results = await asyncio.gather(police.command(type="accept", assignment_id=aid2, id=1),
                                   aux.command(type="accept", assignment_id=aid2, id=2))
    assert sorted(r["ok"] for r in results) == [False, True]
    assert next(r for r in results if not r["ok"])["error"] == "conflict"
    assert [a.status for a in rows(sync_engine, Assignment, Assignment.lead_id == lead2)] == ["accepted"]
    await police.close()
    await aux.close()


async def test_resume_misses_nothing_and_gets_nothing_twice(api_a, make_squad, own_team, redis_url):
    from redis import Redis

    from dispatch import outbox
    squad = make_squad(own_team)
    name = squad.name("police")
    redis = Redis.from_url(redis_url)

    def send(n: int, start: int) -> None:
        outbox.publish(redis, [outbox.Push(name, "lead.updated", {"n": start + i}) for i in range(n)])

    sock = await open_socket(api_a.ws, squad.headers["police"])
    send(5, 0)
    seen = [await sock.recv("lead.updated") for _ in range(3)]
    await sock.ack(seen[-1]["seq"])
    await sock.close()  # mid-stream: 2 sent but not read, more to come while away
    send(4, 5)
    token = squad.headers["police"]["Authorization"].split()[1]
    again = await open_socket(api_a.ws)  # no header: hello with the token and the last seq read
    await again.send(type="hello", token=token, last_seq=seen[-1]["seq"])
    replayed = [await again.recv("lead.updated") for _ in range(6)]
    send(2, 9)  # live again
    live = [await again.recv("lead.updated") for _ in range(2)]
    seqs = [m["seq"] for m in seen + replayed + live]
    assert seqs == list(range(1, 12))  # one by one, none missing, none twice
    assert [m["data"]["n"] for m in seen + replayed + live] == list(range(11))
    await again.close()
    # Resume with the header and ?last_seq: the same stream from there.
    third = await open_socket(api_a.ws, squad.headers["police"], last_seq=9)
    assert [(await third.recv("lead.updated"))["seq"] for _ in range(2)] == [10, 11]
    await third.close()


async def test_a_redis_back_empty_numbers_on_from_the_seq_a_phone_holds(api_a, make_squad, own_team, redis_url):
    """Redis killed without persistence comes back with no counters: the next message would be seq 1,
    which a phone at seq 3 drops as already seen. Its resume raises the counter to 3: it gets seq 4."""
    from redis import Redis

    from dispatch import outbox
    squad = make_squad(own_team)
    name = squad.name("police")
    redis = Redis.from_url(redis_url)
    sock = await open_socket(api_a.ws, squad.headers["police"])
    outbox.publish(redis, [outbox.Push(name, "lead.updated", {"n": i}) for i in range(3)])
    assert [(await sock.recv("lead.updated"))["seq"] for _ in range(3)] == [1, 2, 3]
    await sock.close()
    redis.delete(outbox.seq_key(name), outbox.stream_key(name))  # what a restart without persistence leaves
    back = await open_socket(api_a.ws, squad.headers["police"], last_seq=3)
    await asyncio.sleep(0.3)  # resumed (the counter is raised before the replay)
    outbox.publish(redis, [outbox.Push(name, "lead.updated", {"n": 3})])
    m = await back.recv("lead.updated")
    assert (m["seq"], m["data"]) == (4, {"n": 3})
    await back.close()


async def test_an_offer_whose_push_never_reached_a_live_socket_is_pushed_again(
        api_a, client, source_headers, run_worker, make_squad, own_team, sync_engine):
    """The offer is committed but its push is lost (Redis died after the commit): the sweep pushes it
    again to the members with a live socket, once they have it no more."""
    from sqlalchemy import update
    squad = make_squad(own_team)
    sock = await open_socket(api_a.ws, squad.headers["police"])
    await sock.send(type="status", status="on_duty", id="s")
    assert (await sock.recv("result"))["ok"] is True
    lead_id = await push_and_work(client, source_headers, run_worker)
    first = await sock.recv("offer")
    aid = first["data"]["assignment_id"]
    await until(lambda: all(d.pushed_at for d in rows(sync_engine, OfferDelivery, OfferDelivery.assignment_id == aid,
                                                     OfferDelivery.username == squad.name("police"))), 10,
                "the first push recorded")
    with sync_engine.begin() as conn:  # as if that push had been lost
        conn.execute(update(OfferDelivery).where(OfferDelivery.assignment_id == aid).values(pushed_at=None))
    assert tasks.field_sweep()["repushed"] == 0  # too young: its first push may still be on the way
    clock.advance(timedelta(seconds=6))
    assert tasks.field_sweep()["repushed"] == 1  # the police officer's socket only (the others have none)
    again = await sock.recv("offer")
    assert again["seq"] > first["seq"] and again["data"] == first["data"]
    assert again["data"]["lead"]["id"] == lead_id
    await sock.ack(again["seq"])
    await until(lambda: all(d.acked_at for d in rows(sync_engine, OfferDelivery, OfferDelivery.assignment_id == aid,
                                                    OfferDelivery.username == squad.name("police"))), 10,
                "the ack recorded")
    assert tasks.field_sweep()["repushed"] == 0  # it has it now
    await sock.close()


async def test_an_api_process_killed_and_restarted_loses_no_offer(settings, client, source_headers, run_worker,
                                                                  make_squad, own_team, sync_engine):
    from tests.mobile_api.conftest import ApiProcess
    squad = make_squad(own_team)
    api = ApiProcess(settings).start()
    try:
        sock = await open_socket(api.ws, squad.headers["police"])
        await sock.send(type="status", status="on_duty", id="s")
        assert (await sock.recv("result"))["ok"] is True
        api.kill()  # SIGKILL: no shutdown, no goodbye
        lead_id = await push_and_work(client, source_headers, run_worker)  # the offer is made meanwhile
        api.start()  # the same port
        back = await open_socket(api.ws, squad.headers["police"], last_seq=0)
        offer = await back.recv("offer")
        assert offer["data"]["lead"]["id"] == lead_id
        await back.ack(offer["seq"])
        await back.close()
    finally:
        api.stop()
    (a,) = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    assert a.status == "offered" and a.id == offer["data"]["assignment_id"]


async def test_two_processes_behave_as_one(api_a, api_b, source_headers, run_worker, make_squad, own_team,
                                           sync_engine, settings, redis_url):
    from redis import Redis

    from workers.queues import urgent_queue

    queue = urgent_queue(Redis.from_url(redis_url))  # a P0 lead's job: on the urgent queue
    squad = make_squad(own_team)
    on_b = await open_socket(api_b.ws, squad.headers["police"])
    on_a = await open_socket(api_a.ws, squad.headers["auxiliary"])
    async with httpx.AsyncClient(base_url=api_a.http) as http:
        r = await http.post("/api/v1/leads", json=p0_lead(), headers=source_headers)
        assert r.status_code == 202
        lead_id = r.json()["id"]
        await until(lambda: any(j.func_name == "workers.tasks.process_urgent" and lead_id in j.args[0]
                                for j in queue.jobs), 10, f"process A's job for lead {lead_id} in Redis")
        await run_worker()
        offer_b = await on_b.recv("offer")  # created by a worker, pushed through Redis to process B
        assert offer_b["data"]["lead"]["id"] == lead_id
        aid = offer_b["data"]["assignment_id"]
        assert (await http.post(f"/api/v1/assignments/{aid}/accept",
                                headers=squad.headers["auxiliary"])).status_code == 200  # on process A
    upd = await on_b.recv("assignment.updated")
    assert upd["data"]["status"] == "accepted" and upd["data"]["accepted_by"] == squad.name("auxiliary")
    assert (await on_a.recv("assignment.updated"))["data"]["id"] == aid
    await on_a.close()
    await on_b.close()


async def test_no_connected_member_gets_the_sms_fallback(api_a, client, source_headers, run_worker, make_squad,
                                                         own_team, sync_engine, commander):
    squad = make_squad(own_team)
    lead_id = await push_and_work(client, source_headers, run_worker)
    (a,) = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    sms = rows(sync_engine, SmsMessage, SmsMessage.assignment_id == a.id)
    names = sorted(squad.name(r) for r in ("police", "auxiliary", "grid_worker"))
    assert sorted(m.idempotency_key for m in sms) == sorted(f"offer:{a.id}:{n}" for n in names)
    # queued in the ladder's outbox and sent by its SMS job (the logging gateway) in the same drain
    assert {(m.purpose, m.status, m.lead_id) for m in sms} == {("offer", "sent", lead_id)}
    assert all("/m/" in m.body for m in sms) and len({m.to_phone for m in sms}) == 3
    assert all(d.sms_at is not None for d in rows(sync_engine, OfferDelivery, OfferDelivery.assignment_id == a.id))
    r = await client.get(f"/api/v1/assignments/{a.id}", headers=commander)
    assert {d["state"] for d in r.json()["delivery"]} == {"sms"}
    assert not any(d["delivered"] for d in r.json()["delivery"])
    # The timeout to the next squad still runs.
    assert a.status == "offered" and a.expires_at > a.offered_at


async def test_no_ack_in_time_gets_the_sms_fallback_once(api_a, client, source_headers, run_worker, make_squad,
                                                         own_team, sync_engine):
    squad = make_squad(own_team)
    sock = await open_socket(api_a.ws, squad.headers["police"])
    lead_id = await push_and_work(client, source_headers, run_worker)
    await sock.recv("offer")  # received, never acked
    (a,) = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    assert rows(sync_engine, SmsMessage, SmsMessage.assignment_id == a.id) == []  # someone was online
    clock.advance(timedelta(seconds=11))
    assert tasks.field_sweep()["sms"] == 1
    assert tasks.field_sweep()["sms"] == 0  # once
    sms = rows(sync_engine, SmsMessage, SmsMessage.assignment_id == a.id)
    assert len(sms) == 3 and all(m.purpose == "offer" for m in sms)
    d = {x.username: x for x in rows(sync_engine, OfferDelivery, OfferDelivery.assignment_id == a.id)}
    assert d[squad.name("police")].pushed_at is not None and d[squad.name("police")].acked_at is None
    await sock.close()


async def test_unauthenticated_and_wrong_team_clients_see_nothing(api_a, client, source_headers, run_worker,
                                                                  make_squad, own_team, sync_engine, redis_url):
    from redis import Redis
    from websockets.exceptions import ConnectionClosed

    from dispatch import outbox
    from tests.factories import INSIDE

    async def closed_with(sock) -> int:
        try:
            while True:
                await sock.recv(timeout=10)
        except ConnectionClosed as exc:
            return exc.rcvd.code

    silent = await open_socket(api_a.ws)  # says nothing: closed after WS_HELLO_SECONDS
    assert await closed_with(silent) == 4401
    rude = await open_socket(api_a.ws)
    await rude.send(type="ack", seq=1)
    assert await closed_with(rude) == 4401
    forged = await open_socket(api_a.ws)
    await forged.send(type="hello", token="not-a-token")
    assert await closed_with(forged) == 4401
    bad_header = await open_socket(api_a.ws, {"Authorization": "Bearer nope"})
    assert await closed_with(bad_header) == 4401

    own = make_squad(own_team)
    other_code = neighbours(sync_engine, INSIDE["beat"])[0]
    other = make_squad(other_code, on_duty=False)
    assert await closed_with(await open_socket(api_a.ws, other.headers["police"], path="/api/v1/board/ws")) == 4403
    spy = await open_socket(api_a.ws, other.headers["police"])
    lead_id = await push_and_work(client, source_headers, run_worker)
    (a,) = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    assert a.team_code == own_team
    outbox.publish(Redis.from_url(redis_url), [outbox.Push(other.name("police"), "lead.updated", {"sentinel": 1})])
    first = await spy.recv()
    assert first["data"] == {"sentinel": 1}  # the offer to the other squad never reached this socket
    assert (await spy.command(type="accept", assignment_id=a.id, id="x"))["error"] == "not_found"
    await spy.close()
    async with httpx.AsyncClient(base_url=api_a.http) as http:
        h = other.headers["police"]
        assert (await http.get("/api/v1/assignments", headers=h)).json()["items"] == []
        assert (await http.get(f"/api/v1/assignments/{a.id}", headers=h)).status_code == 404
        assert (await http.post(f"/api/v1/assignments/{a.id}/accept", headers=h)).status_code == 404
        assert (await http.get(f"/api/v1/leads/{lead_id}", headers=h)).status_code == 404
        assert (await http.get("/api/v1/assignments")).status_code == 401
        # The squad it was offered to: full lead after accepting, no ID number for the auxiliary.
        assert (await http.post(f"/api/v1/assignments/{a.id}/accept", headers=own.headers["police"])).status_code \
            == 200
        full = (await http.get(f"/api/v1/leads/{lead_id}", headers=own.headers["auxiliary"])).json()
        assert full["subject"]["phone"].isdigit() and full["subject"]["id_number"] is None
        team = (await http.get(f"/api/v1/teams/{own_team}", headers=other.headers["police"])).json()
        assert all("****" in m["phone"] for m in team["members"] if m["phone"])  # another squad: masked
        mine = (await http.get(f"/api/v1/teams/{own_team}", headers=own.headers["grid_worker"])).json()
        assert any(m["phone"] and m["phone"].isdigit() for m in mine["members"])
        assert mine["open_assignments"] == 1 and mine["status"] == "on_duty"
    with sync_engine.connect() as conn:
        logged = conn.execute(text("SELECT actor FROM access_log WHERE lead_id = :l"), {"l": lead_id}).scalars().all()
    assert logged == [own.name("auxiliary")]
