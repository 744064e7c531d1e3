"""The socket half of the least-privilege matrix (tests/service/test_role_matrix.py): the squads'
socket is each user's own stream, the screens' socket center roles only; anyone else is closed with
4403 (4401 without credentials) before a single message of the stream reaches them."""
from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from service.core.auth import Role
from tests.mobile_api.conftest import open_socket

# The squads' socket is each user's own stream: a center user may open it and receives only what is
# addressed to them; the screens' socket carries every lead and is the center's alone.
SOCKETS = {"/api/v1/ws": {r.value for r in Role}, "/api/v1/board/ws": {"admin", "commander", "operator"}}


async def _answer(base: str, path: str, headers: dict) -> str:
    """'open' (still open, or a first message arrived), else the close code or HTTP status. A refused
    socket is closed at once: two quiet seconds mean it was taken."""
    try:
        sock = await open_socket(base, headers, path=path)
    except InvalidStatus as e:
        return f"http {e.response.status_code}"
    try:
        await asyncio.wait_for(sock.ws.recv(), 2)
        return "open"
    except TimeoutError:
        return "open"
    except ConnectionClosed as e:
        return f"closed {e.rcvd.code if e.rcvd else None}"
    finally:
        await sock.close()


@pytest.mark.parametrize("path", SOCKETS)
async def test_each_role_on_each_socket(path, api_a, make_user, district):
    team = district.teams[0]["code"]
    got, want = {}, {}
    for role in Role:
        h = make_user(role.value, team=team if role.value in ("police", "auxiliary", "grid_worker") else None)
        got[role.value] = await _answer(api_a.ws, path, h)
        want[role.value] = "open" if role.value in SOCKETS[path] else "closed 4403"
    got["anonymous"], want["anonymous"] = await _answer(api_a.ws, path, {}), "closed 4401"
    assert got == want
