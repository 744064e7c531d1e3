"""Every route of the app's own /openapi.json, fuzzed by schemathesis with each kind of caller
(no credentials, a source API key, each role), against a served app on real PostgreSQL and
Redis: no 5xx, every answer matches its documented status, content type and schema, and every
error is {"error", "detail"}. The schema is walked, not listed: a route added later is fuzzed
the day it lands (WebSocket routes are not in OpenAPI)."""
from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import text

from service.core.auth import Role

CALLERS = ["anonymous", "source", *[r.value for r in Role]]
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
async def variety(client, source_headers, commander, make_user, run_worker, sync_engine, redis_url, district):
    """A database holding every kind of lead the answers must describe, at the small ids the fuzzer
    tries first: address-only, outside the district (transferred), called, closed, visited, with a
    case, a repeat warning of the same person, and still received."""
    from tests.conftest import wipe
    from tests.factories import INSIDE, OUTSIDE, make_lead

    wipe(sync_engine, redis_url)
    same = {"phone": "13912345678", "id_number": None}
    leads = [make_lead(risk_level=1), make_lead(location=None) | {"location": {"kind": "address",
                                                                               "address": "滨海区海川路 17 号"}},
             make_lead(location={"lon": OUTSIDE["lon"], "lat": OUTSIDE["lat"], "crs": "wgs84"}),
             make_lead(risk_level=2), make_lead(risk_level=3, subject=same), make_lead(risk_level=1, subject=same),
             make_lead(location=None, subject={"id_number": None, "phone": "13800001111"})]
    r = await client.post("/api/v1/leads/batch", json={"leads": leads}, headers=source_headers)
    ids = [x["id"] for x in r.json()["results"]]
    await run_worker()
    operator = make_user("operator")
    await client.post(f"/api/v1/leads/{ids[0]}/calls", headers=operator, json={"result": "connected",
                                                                              "outcome": "dissuaded"})
    await client.post(f"/api/v1/leads/{ids[0]}/close", headers=commander, json={"outcome": "dissuaded"})
    await client.post(f"/api/v1/leads/{ids[3]}/calls", headers=operator, json={"result": "no_answer"})
    r = await client.post(f"/api/v1/leads/{ids[3]}/assign", json={"team_code": INSIDE["team"]}, headers=commander)
    police = make_user("police", team=INSIDE["team"])
    for step, body in (("accept", {}), ("arrive", {}), ("complete", {"outcome": "dissuaded", "met_in_person": True})):
        await client.post(f"/api/v1/assignments/{r.json().get('id')}/{step}", headers=police, json=body)
    with sync_engine.connect() as conn:  # the same person's two warnings are one piece of work: call its lead
        work = conn.execute(text("SELECT id FROM lead WHERE id = ANY(:ids) AND merged_into IS NULL"),
                            {"ids": [ids[4], ids[5]]}).scalar_one()
    await client.post(f"/api/v1/leads/{work}/calls", headers=operator, json={"result": "busy"})
    await client.post("/api/v1/cases", headers=source_headers, json={
        "case_id": "K-fuzz", "reported_at": "2026-11-03T10:00:00+08:00", "victim": {"phone": same["phone"]}})
    with sync_engine.connect() as conn:
        kinds = dict(conn.execute(text("SELECT id, status FROM lead")).all())
    assert {"closed", "transferred", "working"} <= set(kinds.values()), kinds
    return ids


@pytest.fixture(scope="module")
def served(settings, district, variety, clean_after_module):
    """The app under uvicorn in a thread (its own event loop), on a free port of 127.0.0.1."""
    from service.main import create_app

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the app did not start"
        time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(30)
    sock.close()


@pytest.fixture(scope="module")
def clean_after_module(sync_engine, redis_url):
    yield
    from redis import Redis
    from sqlalchemy import text

    with sync_engine.begin() as conn:  # the fuzzer's pushes must not leak into other tests
        conn.execute(text("TRUNCATE lead, lead_event, rejection, access_log RESTART IDENTITY CASCADE"))
    Redis.from_url(redis_url).flushdb()


@pytest.fixture(scope="module")
def caller_headers(source_headers, make_user, district) -> dict[str, dict]:
    headers = {"anonymous": {}, "source": dict(source_headers)}
    for role in Role:
        h = make_user(role.value, team=district.teams[0]["code"] if role in ("police", "auxiliary", "grid_worker") else None)
        headers[role.value] = {"Authorization": h["Authorization"]}
    return headers


def _app_schema() -> dict:
    """The app's own /openapi.json, built at collection (no servers needed for that)."""
    from service.core.settings import Settings
    from service.main import create_app

    return create_app(Settings(log_level="WARNING")).openapi()


schema = schemathesis.openapi.from_dict(_app_schema())


@schema.parametrize()
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_route_with_every_caller(case, caller_headers, served):
    """Each generated request is sent once per kind of caller."""
    for caller in CALLERS:
        response = case.call_and_validate(base_url=served, headers=caller_headers[caller], checks=CHECKS)
        if response.status_code >= 400:
            body = response.json()
            assert set(body) == {"error", "detail"}, (caller, body)
            assert isinstance(body["error"], str)


def test_the_schema_documents_every_route(served):
    """Each operation names its answers, and its errors use the shared ErrorOut model."""
    doc = httpx.get(f"{served}/openapi.json").json()
    assert "ErrorOut" in doc["components"]["schemas"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = set(op["responses"])
            assert any(c.startswith("2") for c in codes), (method, path)
            if path.startswith("/api/"):
                assert {"422", "503"} <= codes, (method, path)
                for code in codes - {"200", "201", "202", "204"}:
                    ref = op["responses"][code]["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorOut"), (method, path, code)
