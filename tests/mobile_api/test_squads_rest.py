"""Squads' REST and the center's dispatch actions (in-process client; the same database and Redis)."""
from __future__ import annotations

import asyncio

from redis import Redis
from sqlalchemy import text

from dispatch.field.squads import geo_key
from dispatch.models import Assignment
from geo.crs import to_wgs84
from mobile_api.connections import Connection
from tests.factories import INSIDE
from tests.mobile_api.test_field import neighbours, push_and_work, rows


async def test_status_and_location_of_my_squad(client, make_squad, own_team, commander, sync_engine, redis_url):
    squad = make_squad(own_team, on_duty=False)
    h = squad.headers["grid_worker"]
    r = await client.put("/api/v1/teams/me/status", json={"status": "on_duty"}, headers=h)
    assert r.status_code == 200 and r.json() == {"team_code": own_team, "status": "on_duty"}
    assert (await client.put("/api/v1/teams/me/status", json={"status": "on_duty"},
                             headers=commander)).status_code == 403
    bad = await client.put("/api/v1/teams/me/status", json={"status": "asleep"}, headers=h)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "status"
    r = await client.post("/api/v1/teams/me/location", headers=h,
                          json={"lon": 120.35, "lat": 36.05, "crs": "gcj02", "accuracy_m": 8})
    assert r.status_code == 200
    lon, lat = to_wgs84(120.35, 36.05, "gcj02")
    assert abs(r.json()["lon"] - lon) < 1e-9 and abs(r.json()["lat"] - lat) < 1e-9
    for body, field in (({"lon": 500, "lat": 1}, "lon"), ({"lon": 1, "lat": 1, "crs": "utm"}, "crs"),
                        ({"lon": 1, "lat": 1, "at": "0001-01-01T00:00:00+00:00"}, "at")):
        r = await client.post("/api/v1/teams/me/location", json=body, headers=h)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field
    with sync_engine.connect() as conn:
        row = conn.execute(text("SELECT status, last_lon, last_lat, last_at FROM team WHERE code = :c"),
                           {"c": own_team}).one()
    assert row.status == "on_duty" and abs(row.last_lon - lon) < 1e-9 and row.last_at is not None
    (pos,) = Redis.from_url(redis_url).geopos(geo_key(), own_team)
    assert abs(pos[0] - lon) < 1e-5 and abs(pos[1] - lat) < 1e-5
    team = (await client.get(f"/api/v1/teams/{own_team}", headers=commander)).json()
    assert team["position_source"] == "live" and team["location_stale"] is False
    assert team["last_location"]["age_s"] < 120 and len(team["members"]) == 3
    listed = (await client.get("/api/v1/teams?status=on_duty", headers=h)).json()["items"]
    assert [t["code"] for t in listed] == [own_team]
    assert (await client.get("/api/v1/teams/NOPE", headers=h)).status_code == 404
    # A stale fix is replaced by home (or station), and the squad says so.
    with sync_engine.begin() as conn:
        conn.execute(text("UPDATE team SET last_at = now() - interval '11 minutes' WHERE code = :c"),
                     {"c": own_team})
    team = (await client.get(f"/api/v1/teams/{own_team}", headers=commander)).json()
    assert team["location_stale"] is True and team["position_source"] in ("home", "station")


async def test_candidates_and_the_centers_assign(client, source_headers, run_worker, make_squad, own_team,
                                                 commander, sync_engine):
    near = neighbours(sync_engine, INSIDE["beat"])
    own, other = make_squad(own_team), make_squad(near[0])
    lead_id = await push_and_work(client, source_headers, run_worker)
    (first,) = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    assert first.team_code == own_team
    r = await client.get(f"/api/v1/leads/{lead_id}/candidates", headers=commander)
    assert r.status_code == 200
    items = r.json()["items"]
    assert items[0]["team_code"] == near[0] or any(c["team_code"] == near[0] for c in items)
    assert {c["reason"] for c in items} <= {"own_beat", "adjacent_beat", "nearest", "own_beat_stale"}
    assert all(c["why_not"] != "off_duty" or not c["available"] for c in items)
    assert (await client.get(f"/api/v1/leads/{lead_id}/candidates", headers=own.headers["police"])).status_code \
        == 403

    # The squad that already holds the open offer: the offer is kept (no withdraw, no second offer).
    r = await client.post(f"/api/v1/leads/{lead_id}/assign", json={"team_code": own_team}, headers=commander)
    assert r.status_code == 200 and r.json()["id"] == first.id and r.json()["status"] == "offered"
    assert [(a.id, a.status) for a in rows(sync_engine, Assignment, Assignment.lead_id == lead_id)] \
        == [(first.id, "offered")]
    r = await client.post(f"/api/v1/leads/{lead_id}/assign", json={"team_code": near[0]}, headers=commander)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["team_code"] == near[0] and body["choice"]["reason"] == "center" and body["attempt"] == 2
    got = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    assert [(a.team_code, a.status) for a in got] == [(own_team, "withdrawn"), (near[0], "offered")]
    bad = await client.post(f"/api/v1/leads/{lead_id}/assign", json={"team_code": "T-none"}, headers=commander)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "team_code"
    assert (await client.post(f"/api/v1/leads/{lead_id}/assign", json={"team_code": own_team},
                              headers=own.headers["police"])).status_code == 403
    assert (await client.post("/api/v1/leads/999999/assign", json={"team_code": own_team},
                              headers=commander)).status_code == 404
    # Accepted by the other squad: the center can no longer move it.
    assert (await client.post(f"/api/v1/assignments/{got[1].id}/accept",
                              headers=other.headers["police"])).status_code == 200
    r = await client.post(f"/api/v1/leads/{lead_id}/assign", json={"team_code": own_team}, headers=commander)
    assert r.status_code == 409 and r.json()["error"] == "conflict"
    # The withdrawn offer cannot be accepted.
    late = await client.post(f"/api/v1/assignments/{got[0].id}/accept", headers=own.headers["police"])
    assert late.status_code == 409


async def test_a_full_inbox_drops_the_connection():
    conn = Connection("someone", maxsize=2)
    for i in range(2):
        conn.offer((i + 1, "{}", {}))
    assert not conn.dropped
    conn.offer((3, "{}", {}))
    assert conn.dropped and len(conn.items) == 2
    await asyncio.sleep(0)
