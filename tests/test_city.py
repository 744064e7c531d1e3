"""A city of two districts on one deployment (issue 23): the district the run stands on (A) and a small
one made by the shared generator (B), in a database of their own, served by a real API process.

A lead pushed to the city lands in its district and on that district's screens alone; a district's
people get 404 for the other's leads, assignments and squads and count only their own in the KPIs;
handovers between districts are accepted, or come back to the city center with an alarm; a P0 outside
the city gets its call and SMS here and is recorded as handed to its destination; every open lead has
an owner."""
from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
import psycopg
import pytest
from redis import Redis
from shapely.geometry import shape
from sqlalchemy import text

from service.core.runtime import with_database
from tests.data import district_dir, shared_tool
from tests.factories import INSIDE, make_lead
from tests.mobile_api.conftest import ApiProcess, open_socket

B = "370212"
# A P0 fund-transfer warning of ¥500,000, tried as a new user would, placed far outside both districts,
# of a person registered in Beijing (110101): handed to that region.
OUTSIDE_CITY = {"lon": 118.0, "lat": 35.0}
BEIJING_ID = "11010119900307" + "421"


def _id_number(first17: str) -> str:
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, weights)) % 11]


@dataclass
class City:
    api: ApiProcess
    url: str  # the city's database
    a: str  # district codes
    b: str
    b_point: dict  # a place in a beat of B (with its beat and team)
    heads: dict  # who → Authorization headers
    source: dict  # the platforms' key (the city's)
    engine: object
    redis_url: str

    def sql(self, q: str, **params):
        with self.engine.begin() as conn:
            return conn.execute(text(q), params).all()


def _b_point(directory) -> dict:
    beats = json.loads((directory / "beats.geojson").read_text(encoding="utf-8"))["features"]
    teams = {t["beat_code"]: t["code"] for t in json.loads((directory / "teams.json").read_text(encoding="utf-8"))}
    f = sorted(beats, key=lambda f: f["properties"]["code"])[0]
    core = shape(f["geometry"]).buffer(-0.0005)
    p = core.representative_point()
    return {"lon": round(p.x, 7), "lat": round(p.y, 7), "beat": f["properties"]["code"],
            "street": f["properties"]["street_code"], "team": teams[f["properties"]["code"]]}


@pytest.fixture(scope="module")
def city(servers, settings, tmp_path_factory):
    """Its own database with districts A and B, users of each and of the city center, the city's
    source key, an API process on it; the in-process workers' context points at it meanwhile."""
    from dispatch.district import import_district
    from geo.district import load_district_dir
    from geo.store import IndexCache
    from service.core.auth import create_access_token, hash_api_key, hash_password, new_api_key
    from service.core.db import make_sync_engine, sync_session
    from service.core.migrate import upgrade
    from service.core.models import ApiKey, User
    from workers import tasks

    out = tmp_path_factory.mktemp("city") / "b"
    subprocess.run([sys.executable, str(shared_tool("gen_district.py")), str(out), "--seed", "23", "--region", B,
                    "--name", "崂山区", "--center", "120.60,36.15", "--radius-km", "3", "--streets", "2",
                    "--beats", "6", "--islands", "0", "--enclaves", "0", "--leads", "20"],
                   check=True, capture_output=True, timeout=120)
    admin = servers[0]
    name = f"quanzu_city_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    upgrade(url)
    engine = make_sync_engine(url, pool_size=2)
    a_data, b_data = load_district_dir(district_dir()), load_district_dir(out)
    heads = {}
    with sync_session(engine) as s:
        import_district(s, a_data)
        import_district(s, b_data)
        key = new_api_key()
        s.add(ApiKey(name="platform", key_hash=hash_api_key(key), prefix=key[:8]))  # the city's: no district
        for who, role, district in (("city", "commander", None), ("a_cmd", "commander", a_data.code),
                                    ("a_op", "operator", a_data.code), ("b_cmd", "commander", B),
                                    ("b_op", "operator", B)):
            s.add(User(username=who, password_hash=hash_password("pw-123456"), role=role, district_code=district))
            heads[who] = {"Authorization": "Bearer " + create_access_token(who, role, None, settings.secret_key, 60,
                                                                            district=district)}
        s.commit()
    saved = {k: tasks.ctx.__dict__.pop(k) for k in ("engine", "index") if k in tasks.ctx.__dict__}
    tasks.ctx.__dict__.update(engine=engine, index=IndexCache())

    @dataclass
    class _S:
        database_url: str
        redis_url: str

    # The run's Redis namespace: the in-process worker drains the queue this API process fills.
    api = ApiProcess(_S(url, settings.redis_url), env={"REDIS_NAMESPACE": settings.redis_prefix}).start()
    try:
        yield City(api, url, a_data.code, B, _b_point(out), heads, {"X-API-Key": key}, engine,
                   settings.redis_url)
    finally:
        api.stop()
        for k in ("engine", "index"):
            tasks.ctx.__dict__.pop(k, None)
        tasks.ctx.__dict__.update(saved)
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def work(city, redis_url, settings):
    """Drain the lead queue with a real rq worker in this process (on the city's database)."""
    from workers.queues import worker_queues
    from workers.run import Worker

    def run() -> None:
        """Until no lead of the city's database waits for a worker (the API process enqueues after a
        short linger, possibly in more than one job)."""
        redis = Redis.from_url(redis_url)
        queues = worker_queues(redis)
        deadline = time.monotonic() + 20
        while city.sql("SELECT count(*) FROM lead WHERE status = 'received'")[0][0]:
            assert time.monotonic() < deadline, "leads left unprocessed"
            if any(q.count for q in queues):
                Worker(queues, connection=redis).work(burst=True, with_scheduler=False)
            else:
                time.sleep(0.05)

    return run


async def _push(http: httpx.AsyncClient, city: City, **kw) -> int:
    r = await http.post("/api/v1/leads", json=make_lead(**kw), headers=city.source)
    assert r.status_code == 202, r.text
    return r.json()["id"]


async def _events(sock, seconds: float) -> list[dict]:
    """Every message a socket gets within `seconds`."""
    got, end = [], time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            got.append(await sock.recv(timeout=left))
        except (TimeoutError, asyncio.TimeoutError):
            break
    return got


def _lead_ids(events: list[dict]) -> set[int]:
    ids = set()
    for e in events:
        d = e.get("data") or {}
        ids.update(d.get("lead_ids") or [])
        if d.get("lead_id") is not None:
            ids.add(d["lead_id"])
    return ids


@pytest.fixture(scope="module")
async def placed(city, work):
    """One lead in each district and a P0 outside the city, pushed to the city and placed, with the
    district screens listening meanwhile."""
    from dispatch.outbox import board_stream, seq_key

    # From the streams' current ends: the run's other database has a district 370299 too, and its
    # board events of the last 24 h share this Redis (a fresh screen would replay them).
    redis = Redis.from_url(city.redis_url)
    screens = {}
    for who, district in (("city", None), ("a_cmd", city.a), ("b_cmd", city.b), ("city_on_b", city.b)):
        last = int(redis.get(seq_key(board_stream(district))) or 0)
        extra = {"district": district} if who == "city_on_b" else {}  # the city's wall showing one district
        screens[who] = await open_socket(city.api.ws, city.heads[who.removesuffix("_on_b")],
                                         path="/api/v1/board/ws", last_seq=last, **extra)
    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:
        in_b = await _push(http, city, location={"lon": city.b_point["lon"], "lat": city.b_point["lat"]})
        in_a = await _push(http, city, location={"lon": INSIDE["lon"], "lat": INSIDE["lat"]})
        outside = await _push(http, city, location=OUTSIDE_CITY, warning_type="fund_transfer", risk_level=1,
                              amount_cny=500000, subject={"id_number": _id_number(BEIJING_ID[:17]),
                                                          "residency": "nonlocal"})
    work()
    done = time.monotonic()
    heard = {}
    for who, sock in screens.items():
        heard[who] = await _events(sock, 1.5)
        await sock.close()
    return {"a": in_a, "b": in_b, "outside": outside, "heard": heard, "worked_at": done}


async def test_a_lead_pushed_to_the_city_lands_in_its_district_and_on_its_screen_alone(city, placed):
    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:
        b = (await http.get(f"/api/v1/leads/{placed['b']}", headers=city.heads["city"])).json()
        a = (await http.get(f"/api/v1/leads/{placed['a']}", headers=city.heads["city"])).json()
    assert b["placement"]["district_code"] == city.b and b["placement"]["beat_code"] == city.b_point["beat"]
    assert a["placement"]["district_code"] == city.a and a["placement"]["beat_code"] == INSIDE["beat"]
    assert [r.district_code for r in city.sql("SELECT district_code FROM lead WHERE id = :i", i=placed["b"])] == [city.b]
    heard = placed["heard"]
    # B's screen: the lead created and placed, within the second after the worker placed it
    b_types = {(e["type"], (e["data"].get("lead_ids") or [e["data"].get("lead_id")])[0]) for e in heard["b_cmd"]}
    assert ("lead.created", placed["b"]) in b_types and ("lead.updated", placed["b"]) in b_types
    assert _lead_ids(heard["b_cmd"]) == {placed["b"]}  # nothing of A's, nothing outside the city
    assert _lead_ids(heard["a_cmd"]) == {placed["a"]}, heard["a_cmd"]
    assert {placed["a"], placed["b"], placed["outside"]} <= _lead_ids(heard["city"])  # the city hears all
    assert _lead_ids(heard["city_on_b"]) == {placed["b"]}


async def test_a_district_gets_404_for_the_other_districts_rows(city, placed):
    a, b = city.heads["a_op"], city.heads["b_cmd"]
    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:
        assign = await http.post(f"/api/v1/leads/{placed['b']}/assign", json={"team_code": city.b_point["team"]},
                                 headers=b)
        assert assign.status_code == 200, assign.text
        aid = assign.json()["id"]
        for method, path, body in (("GET", f"/api/v1/leads/{placed['b']}", None),
                                   ("POST", f"/api/v1/leads/{placed['b']}/sign", None),
                                   ("POST", f"/api/v1/leads/{placed['b']}/calls", {"result": "no_answer"}),
                                   ("POST", f"/api/v1/leads/{placed['b']}/close", {"outcome": "dissuaded"}),
                                   ("GET", f"/api/v1/assignments/{aid}", None),
                                   ("GET", f"/api/v1/teams/{city.b_point['team']}", None)):
            r = await http.request(method, path, json=body, headers=a)
            assert r.status_code == 404, (path, r.status_code, r.text)
        # ... and lists without them
        leads = (await http.get("/api/v1/leads", headers=a)).json()["items"]
        assert placed["a"] in {x["id"] for x in leads} and placed["b"] not in {x["id"] for x in leads}
        queue = (await http.get("/api/v1/queue", headers=a)).json()["items"]
        assert placed["a"] in {x["id"] for x in queue}
        owners = dict(city.sql("SELECT id, district_code FROM lead"))
        assert {owners[x["id"]] for x in queue} == {city.a}
        calls = (await http.get("/api/v1/calls/queue", headers=a)).json()["items"]
        assert placed["b"] not in {x["id"] for x in calls} and placed["outside"] not in {x["id"] for x in calls}
        mine = (await http.get("/api/v1/assignments", headers=a)).json()["items"]
        assert aid not in {x["id"] for x in mine}
        teams = (await http.get("/api/v1/teams", headers=a)).json()["items"]
        assert teams and not any(t["code"].startswith("T" + city.b) for t in teams)
        # a district cannot send the other's squad either
        r = await http.post(f"/api/v1/leads/{placed['a']}/assign", json={"team_code": city.b_point["team"]},
                            headers=city.heads["a_cmd"])
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "team_code"
        # the KPIs: each district counts its own; the city ranks its districts
        owned = dict(city.sql("SELECT coalesce(district_code, 'city'), count(*) FROM lead GROUP BY 1"))
        a_stats = (await http.get("/api/v1/stats", params={"group_by": "street"}, headers=a)).json()
        b_stats = (await http.get("/api/v1/stats", params={"group_by": "street"}, headers=b)).json()
        assert a_stats["total"]["leads"] == owned[city.a] and all(r["key"].startswith(city.a) for r in a_stats["rows"])
        assert b_stats["total"]["leads"] == owned[city.b] and all(r["key"].startswith(city.b) for r in b_stats["rows"])
        assert city.b_point["street"] in {r["key"] for r in b_stats["rows"]}
        by_district = (await http.get("/api/v1/stats", params={"group_by": "district"},
                                      headers=city.heads["city"])).json()
        assert {r["key"] or "city": r["leads"] for r in by_district["rows"]} == owned
        month = (await http.get(f"/api/v1/leads/{placed['a']}", headers=a)).json()["received_at"][:7]
        ranking = (await http.get("/api/v1/stats/ranking", params={"month": month, "by": "district"},
                                  headers=city.heads["city"])).json()
        assert {r["key"] for r in ranking["rows"]} == {city.a, city.b}
        r = await http.get("/api/v1/stats/ranking", params={"month": month, "by": "district"}, headers=a)
        assert r.status_code == 422
        streets = (await http.get("/api/v1/stats/ranking", params={"month": month}, headers=b)).json()
        assert len(streets["rows"]) == 2 and all(r["key"].startswith(city.b) for r in streets["rows"])


async def test_a_p0_outside_the_city_gets_its_call_and_sms_and_is_handed_to_its_destination(city, placed):
    lead_id = placed["outside"]
    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:
        d = (await http.get(f"/api/v1/leads/{lead_id}", headers=city.heads["city"])).json()
        assert d["status"] == "transferred" and d["tier"]["tier"] == "P0"
        assert d["transfer"] == {"to": "110101", "reason": "out_of_jurisdiction"}
        assert d["placement"]["in_jurisdiction"] is False and d["placement"]["district_code"] is None
        sms = city.sql("SELECT purpose, to_phone FROM sms_message WHERE lead_id = :i", i=lead_id)
        assert [(s.purpose, s.to_phone) for s in sms] == [("warning", d["subject"]["phone"])]
        assert city.sql("SELECT name, state FROM lead_deadline WHERE lead_id = :i", i=lead_id) == [("first_call",
                                                                                                     "pending")]
        calls = (await http.get("/api/v1/calls/queue", headers=city.heads["city"])).json()["items"]
        assert lead_id in {x["id"] for x in calls}
        assert "visit_requested" not in {e["kind"] for e in d["timeline"]}
        # the center still acts on it: the call, then the close
        r = await http.post(f"/api/v1/leads/{lead_id}/calls", json={"result": "connected"}, headers=city.heads["city"])
        assert r.status_code == 201, r.text
        assert r.json()["lead"]["needs_call"] is False
        r = await http.post(f"/api/v1/leads/{lead_id}/close", json={"outcome": "dissuaded"}, headers=city.heads["city"])
        assert r.status_code == 200 and r.json()["status"] == "closed", r.text
    assert city.sql("SELECT count(*) FROM visit WHERE lead_id = :i", i=lead_id) == [(0,)]


async def _handover(http, city: City, lead_id: int, who: str, to: str) -> dict:
    r = await http.post(f"/api/v1/leads/{lead_id}/transfer", json={"to": to, "reason": "人在另一区"},
                        headers=city.heads[who])
    assert r.status_code == 200, r.text
    return r.json()


async def test_a_transfer_from_a_to_b_is_accepted_by_b(city, placed, work):
    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:
        lead_id = await _push(http, city, location={"lon": INSIDE["lon"], "lat": INSIDE["lat"]})
        work()
        state = await _handover(http, city, lead_id, "a_op", city.b)
        assert state["district_code"] == city.a  # the sender stays accountable while it waits
        assert state["handover"]["to"] == city.b and state["handover"]["state"] == "pending"
        incoming = (await http.get("/api/v1/transfers", params={"direction": "incoming"},
                                   headers=city.heads["b_op"])).json()["items"]
        assert [(t["from"], t["state"]) for t in incoming if t["lead_id"] == lead_id] == [(city.a, "pending")]
        assert all(t["to"] == city.b for t in incoming)
        assert (await http.get(f"/api/v1/leads/{lead_id}", headers=city.heads["b_op"])).status_code == 200
        # the sender cannot accept its own handover
        assert (await http.post(f"/api/v1/leads/{lead_id}/transfer/accept",
                                headers=city.heads["a_cmd"])).status_code == 403
        r = await http.post(f"/api/v1/leads/{lead_id}/transfer/accept", headers=city.heads["b_op"])
        assert r.status_code == 200, r.text
        assert r.json()["district_code"] == city.b and r.json()["handover"]["state"] == "accepted"
        assert (await http.get(f"/api/v1/leads/{lead_id}", headers=city.heads["a_op"])).status_code == 404
        queue = (await http.get("/api/v1/queue", headers=city.heads["b_op"])).json()["items"]
        assert lead_id in {x["id"] for x in queue}
        out = (await http.get("/api/v1/transfers", params={"direction": "outgoing"},
                              headers=city.heads["a_op"])).json()["items"]
        assert [(t["state"], t["answered_by"]) for t in out if t["lead_id"] == lead_id] == [("accepted", "b_op")]
        assert all(t["from"] == city.a for t in out)
        # a refused one stays with its sender
        other = await _push(http, city, location={"lon": INSIDE["lon"], "lat": INSIDE["lat"]})
        work()
        await _handover(http, city, other, "a_cmd", city.b)
        r = await http.post(f"/api/v1/leads/{other}/transfer/refuse", json={"reason": "人在本区外"},
                            headers=city.heads["b_cmd"])
        assert r.status_code == 200 and r.json()["district_code"] == city.a
        assert r.json()["handover"]["state"] == "refused"
        assert (await http.get(f"/api/v1/leads/{other}", headers=city.heads["b_op"])).status_code == 404
    kinds = [k for (k,) in city.sql("SELECT kind FROM lead_event WHERE lead_id = :i ORDER BY id", i=lead_id)]
    assert kinds.index("transfer_requested") < kinds.index("transfer_accepted")


async def test_an_unaccepted_transfer_comes_back_to_the_city_with_an_alarm(city, placed, work):
    from service.core import clock
    from workers import tasks

    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:
        lead_id = await _push(http, city, location={"lon": city.b_point["lon"], "lat": city.b_point["lat"]})
        work()
        state = await _handover(http, city, lead_id, "b_cmd", city.a)
        assert state["handover"]["state"] == "pending"
        due = city.sql("SELECT due_at, requested_at FROM lead_transfer WHERE lead_id = :i", i=lead_id)[0]
        assert due.due_at - due.requested_at == timedelta(minutes=15)  # policy transfer.accept_within
        clock.set_offset(timedelta(minutes=16))
        try:
            tasks.sweep_deadlines()
        finally:
            clock.set_offset(timedelta(0))
        d = (await http.get(f"/api/v1/leads/{lead_id}", headers=city.heads["city"])).json()
        assert d["district_code"] is None  # the city center's now
        alarms = (await http.get("/api/v1/alarms", headers=city.heads["city"])).json()["items"]
        mine = [x for x in alarms if x["lead_id"] == lead_id and x["kind"] == "transfer_accept"]
        assert [(x["data"]["from"], x["data"]["to"]) for x in mine] == [(city.b, city.a)]
        for who in ("a_op", "b_op"):  # neither district holds it now
            assert (await http.get(f"/api/v1/leads/{lead_id}", headers=city.heads[who])).status_code == 404
            assert lead_id not in {x["lead_id"] for x in
                                   (await http.get("/api/v1/alarms", headers=city.heads[who])).json()["items"]}
        out = (await http.get("/api/v1/transfers", params={"direction": "outgoing"},
                              headers=city.heads["b_cmd"])).json()["items"]
        assert [t["state"] for t in out if t["lead_id"] == lead_id] == ["expired"]
        assert (await http.post(f"/api/v1/leads/{lead_id}/transfer/accept",
                                headers=city.heads["a_op"])).status_code == 404


async def test_every_open_lead_has_an_owner(city, placed):
    rows = city.sql("SELECT id, status, district_code, transfer_to FROM lead WHERE status <> 'closed' ORDER BY id")
    owners = {r.id: r.district_code or "city" for r in rows}
    assert set(owners.values()) <= {city.a, city.b, "city"}
    assert (owners[placed["a"]], owners[placed["b"]]) == (city.a, city.b)
    # a lead handed outside the city still names where it went
    assert all(r.transfer_to for r in rows if r.status == "transferred")
    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:
        listed = (await http.get("/api/v1/leads", params={"limit": 200}, headers=city.heads["city"])).json()["items"]
    assert {x["id"]: x["district_code"] or "city" for x in listed if x["status"] != "closed"} == owners
    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:  # the city center, one owner at a time
        for owner in (city.a, city.b, "city"):
            page = (await http.get("/api/v1/leads", params={"limit": 200, "district": owner},
                                   headers=city.heads["city"])).json()["items"]
            assert {x["id"] for x in page if x["status"] != "closed"} == {i for i, o in owners.items() if o == owner}
            queue = (await http.get("/api/v1/queue", params={"district": owner}, headers=city.heads["city"])).json()
            assert {x["id"] for x in queue["items"]} <= {i for i, o in owners.items() if o == owner}


async def test_with_review_an_operators_transfer_waits_for_its_commander(city, placed, work):
    """policy `[transfer] review = true`: an operator's handover goes to the receiver only once a
    commander of the sending district approves it; a commander's own goes at once."""
    import dataclasses

    from dispatch import handovers
    from dispatch.policy import Transfer, load_policy
    from service.core.auth import Principal
    from service.core.db import sync_session
    from service.core.errors import Forbidden, NotFound

    policy = load_policy()
    policy = dataclasses.replace(policy, transfer=Transfer(review=True, accept_within=policy.transfer.accept_within))
    async with httpx.AsyncClient(base_url=city.api.http, timeout=30) as http:
        lead_id = await _push(http, city, location={"lon": INSIDE["lon"], "lat": INSIDE["lat"]})
        work()
    op, cmd = Principal("a_op", "operator", None, city.a), Principal("a_cmd", "commander", None, city.a)
    with sync_session(city.engine) as s:
        handovers.transfer_lead(s, lead_id, city.b, "人在崂山区", op, policy)
        s.commit()
    (t,) = city.sql("SELECT id, state, due_at FROM lead_transfer WHERE lead_id = :i", i=lead_id)
    assert (t.state, t.due_at) == ("review", None)
    assert city.sql("SELECT count(*) FROM lead_deadline WHERE lead_id = :i AND name = 'transfer_accept'",
                    i=lead_id) == [(0,)]
    with sync_session(city.engine) as s:
        with pytest.raises(Forbidden):  # the receiver does not review the sender's handovers
            handovers.review_transfer(s, t.id, True, None, Principal("b_cmd", "commander", None, city.b), policy)
    with sync_session(city.engine) as s:
        with pytest.raises(NotFound):  # the receiver cannot accept before the review either
            handovers.accept_transfer(s, 10**12, Principal("b_cmd", "commander", None, city.b), policy)
    with sync_session(city.engine) as s:
        handovers.review_transfer(s, t.id, True, "同意", cmd, policy)
        s.commit()
    (t2,) = city.sql("SELECT state, reviewed_by, due_at FROM lead_transfer WHERE id = :i", i=t.id)
    assert (t2.state, t2.reviewed_by) == ("pending", "a_cmd") and t2.due_at is not None
    (d,) = city.sql("SELECT state, due_at FROM lead_deadline WHERE lead_id = :i AND name = 'transfer_accept'",
                    i=lead_id)
    assert (d.state, d.due_at) == ("pending", t2.due_at)


def test_a_district_cannot_take_over_another_districts_codes(city):
    """Codes are unique across the city: an import whose squads or beats are another district's
    already is refused, naming them, and changes nothing."""
    import dataclasses

    from dispatch.district import CodeTaken, import_district
    from geo.district import load_district_dir
    from service.core.db import sync_session

    a = load_district_dir(district_dir())
    before = city.sql("SELECT count(*), min(district_code) FROM beat WHERE district_code = :a", a=city.a)
    with sync_session(city.engine) as s, pytest.raises(CodeTaken, match=city.a):
        import_district(s, dataclasses.replace(a, code="370213"))
    assert city.sql("SELECT count(*), min(district_code) FROM beat WHERE district_code = :a", a=city.a) == before
    assert city.sql("SELECT count(*) FROM district WHERE code = '370213'") == [(0,)]
