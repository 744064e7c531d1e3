"""Issue 24: a change to a user ends their tokens at once, on REST and on open sockets."""
from __future__ import annotations

import httpx
from websockets.exceptions import ConnectionClosed

from dispatch.models import Assignment
from tests.factories import INSIDE
from tests.mobile_api.conftest import open_socket
from tests.mobile_api.test_field import neighbours, push_and_work, rows


async def _login(client, username: str) -> dict:
    r = await client.post("/api/v1/auth/token", data={"username": username, "password": "pw-123456"})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_a_grid_worker_moved_to_another_squad_loses_the_old_squad_s_lead_at_once(
        client, source_headers, run_worker, make_squad, own_team, sync_engine):
    from service.cli import access

    squad = make_squad(own_team)
    lead_id = await push_and_work(client, source_headers, run_worker)
    (a,) = rows(sync_engine, Assignment, Assignment.lead_id == lead_id)
    assert a.team_code == own_team
    assert (await client.post(f"/api/v1/assignments/{a.id}/accept", headers=squad.headers["police"])).status_code == 200
    worker = squad.name("grid_worker")
    old = await _login(client, worker)
    assert (await client.get(f"/api/v1/leads/{lead_id}", headers=old)).status_code == 200

    access.update_user(worker, team=neighbours(sync_engine, INSIDE["beat"])[0])
    assert (await client.get(f"/api/v1/leads/{lead_id}", headers=old)).status_code == 401
    new = await _login(client, worker)
    assert (await client.get(f"/api/v1/leads/{lead_id}", headers=new)).status_code == 404


async def _closed_with(sock) -> int:
    try:
        while True:
            await sock.recv(timeout=8)  # well under WS_RECHECK_SECONDS + a ping: the announcement closes it
    except ConnectionClosed as exc:
        return exc.rcvd.code


async def test_open_sockets_close_when_the_user_is_deactivated_or_signs_out(api_a, make_squad, own_team,
                                                                            make_user):
    from service.cli import access

    squad = make_squad(own_team)
    async with httpx.AsyncClient(base_url=api_a.http) as http:
        police = await _login(http, squad.name("police"))
        aux = await _login(http, squad.name("auxiliary"))
        sock = await open_socket(api_a.ws, police)
        other = await open_socket(api_a.ws, aux)
        access.update_user(squad.name("police"), active=False)
        assert await _closed_with(sock) == 4401
        assert (await http.post("/api/v1/auth/logout", headers=aux)).status_code == 200
        assert await _closed_with(other) == 4401
        # and a token of before cannot open a new one
        again = await open_socket(api_a.ws, police)
        assert await _closed_with(again) == 4401
        # a screen's socket too
        name = make_user("commander")["X-Username"]
        screen = await open_socket(api_a.ws, await _login(http, name), path="/api/v1/board/ws")
        access.update_user(name, role="operator")
        assert await _closed_with(screen) == 4401
