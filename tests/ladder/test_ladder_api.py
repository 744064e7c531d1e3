"""Illegal transitions, unknown leads, wrong roles and malformed bodies: 409 / 404 / 403 / 422,
each shaped {"error", "detail"}, never a 500 — and nothing stored by a refused request."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from dispatch.models import LeadEvent
from tests.factories import INSIDE, make_lead
from tests.ladder.helpers import lead_row, tiered

pytestmark = pytest.mark.usefixtures("district", "clean")

ACTIONS = {  # path → a valid body
    "sign": None, "tier": {"tier": "P0", "reason": "复核后提级"}, "transfer": {"to": "市南区反诈中心", "reason": "人在外区"},
    "close": {"outcome": "dissuaded", "note": "已劝阻"}, "calls": {"result": "no_answer"},
    "callbacks": {"result": "safe"},
}
ROLES = {"sign": {"admin", "commander", "operator"}, "tier": {"admin", "commander"},
         "transfer": {"admin", "commander"}, "close": {"admin", "commander", "operator"},
         "calls": {"admin", "commander", "operator"}, "callbacks": {"admin", "commander", "operator"}}


@pytest.fixture(scope="module")
def users(make_user) -> dict:
    return {r: make_user(r, team=INSIDE["team"] if r in ("police", "auxiliary", "grid_worker") else None)
            for r in ("admin", "commander", "operator", "police", "auxiliary", "grid_worker")}


def shaped(r, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "detail"}
    return body


def n_events(sync_engine) -> int:
    with sync_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(LeadEvent)).scalar_one()


async def post(client, path, headers, body):
    return await client.post(f"/api/v1/leads/{path}", headers=headers, json=body)


async def test_unknown_leads_are_404_and_bad_ids_422(client, users):
    for action, body in ACTIONS.items():
        shaped(await post(client, f"999999/{action}", users["admin"], body), 404)
        for bad in ("0", "-1", str(2**63), "x"):
            shaped(await post(client, f"{bad}/{action}", users["admin"], body), 422)


async def test_roles(client, source_headers, users, sync_engine, run_worker):
    lead_id = await tiered(client, source_headers, run_worker, "P1")
    before = n_events(sync_engine)
    for action, body in ACTIONS.items():
        for role, headers in users.items():
            if role not in ROLES[action]:
                shaped(await post(client, f"{lead_id}/{action}", headers, body), 403)
        shaped(await post(client, f"{lead_id}/{action}", source_headers, body), 403)  # API keys push only
        shaped(await post(client, f"{lead_id}/{action}", {}, body), 401)
    for path, method, allowed in (("/api/v1/calls/queue", "GET", ROLES["calls"]),
                                  ("/api/v1/callbacks/due", "GET", ROLES["calls"]),
                                  ("/api/v1/policy/replay", "POST", {"admin", "commander"})):
        for role, headers in users.items():
            r = await client.request(method, path, headers=headers, json={"policy": "version = 1"})
            if role in allowed:
                assert r.status_code in (200, 422), r.text
            else:
                shaped(r, 403)
    assert n_events(sync_engine) == before  # nothing happened to the lead


MALFORMED = [
    ("tier", {"tier": "P9", "reason": "x"}, "tier"), ("tier", {"tier": "P1"}, "reason"),
    ("tier", {"tier": "P1", "reason": ""}, "reason"), ("tier", {"tier": "P1", "reason": "a\x00b"}, "reason"),
    ("tier", b'{"tier": "P1", "reason": "\\ud800"}', "reason"), ("tier", {"tier": "P1", "reason": "x" * 501}, "reason"),
    ("tier", {"tier": "P1", "reason": "x", "extra": 1}, "extra"),
    ("transfer", {"reason": "x"}, "to"), ("transfer", {"to": 5, "reason": "x"}, "to"),
    ("close", {"outcome": "transferred"}, "outcome"), ("close", {"outcome": "dissuaded", "loss_cny": -1}, "loss_cny"),
    ("close", {"outcome": "dissuaded", "saved_cny": 1e12}, "saved_cny"),
    ("close", {"outcome": "dissuaded", "saved_cny": 1.234}, "saved_cny"),
    ("close", {"outcome": "dissuaded", "saved_cny": "NaN"}, "saved_cny"),
    ("calls", {"result": "voicemail"}, "result"), ("calls", {}, "result"),
    ("calls", {"result": "no_answer", "outcome": "dissuaded"}, "outcome"),
    ("calls", {"result": "connected", "note": "x" * 2001}, "note"),
    ("callbacks", {"result": "maybe"}, "result"), ("callbacks", {"result": "safe", "loss_cny": 10}, "loss_cny"),
    ("close", [], ""), ("close", "dissuaded", ""),
]


async def test_malformed_bodies_name_the_field(client, source_headers, users, sync_engine, run_worker):
    open_lead = await tiered(client, source_headers, run_worker, "P1")
    closed = await tiered(client, source_headers, run_worker, "P2", subject={"id_number": None})
    assert (await post(client, f"{closed}/close", users["operator"], {"outcome": "dissuaded"})).status_code == 200
    before = n_events(sync_engine)
    for action, body, field in MALFORMED:
        lead_id = closed if action == "callbacks" else open_lead  # a callback needs a closed lead
        if isinstance(body, bytes):  # JSON no client library would write (a lone surrogate)
            r = await client.post(f"/api/v1/leads/{lead_id}/{action}", content=body,
                                  headers={**users["admin"], "Content-Type": "application/json"})
        else:
            r = await client.post(f"/api/v1/leads/{lead_id}/{action}", headers=users["admin"], json=body)
        detail = shaped(r, 422)["detail"]
        assert any(d["field"].split(".")[0] == field or (not field and d["field"] in ("", "body"))
                   for d in detail), (action, body, detail)
    assert n_events(sync_engine) == before  # nothing stored by any of them


async def test_illegal_transitions_are_409(client, source_headers, users, sync_engine, run_worker):
    admin = users["admin"]
    lead_id = await tiered(client, source_headers, run_worker, "P2")
    listed = {x["id"]: x for x in (await client.get("/api/v1/leads", headers=admin)).json()["items"]}
    assert listed[lead_id]["signed_at"] is None
    assert (await post(client, f"{lead_id}/sign", admin, None)).status_code == 200
    listed = {x["id"]: x for x in (await client.get("/api/v1/leads", headers=admin)).json()["items"]}
    assert listed[lead_id]["signed_at"] is not None  # the screen disables 签收 once signed
    assert "signed already" in shaped(await post(client, f"{lead_id}/sign", admin, None), 409)["detail"]
    shaped(await post(client, f"{lead_id}/tier", admin, {"tier": "P2", "reason": "同级"}), 409)
    shaped(await post(client, f"{lead_id}/callbacks", admin, {"result": "safe"}), 409)  # none due: not closed
    assert (await post(client, f"{lead_id}/close", admin, {"outcome": "dissuaded"})).status_code == 200
    for action in ("close", "transfer", "tier", "calls"):
        shaped(await post(client, f"{lead_id}/{action}", admin, ACTIONS[action]), 409)
    assert (await post(client, f"{lead_id}/callbacks", admin, {"result": "safe"})).status_code == 201
    shaped(await post(client, f"{lead_id}/callbacks", admin, {"result": "safe"}), 409)  # done already
    other = await tiered(client, source_headers, run_worker, "P2", subject={"id_number": None})
    assert (await post(client, f"{other}/transfer", admin, ACTIONS["transfer"])).status_code == 200
    for action in ("close", "transfer", "tier", "calls", "sign", "callbacks"):
        shaped(await post(client, f"{other}/{action}", admin, ACTIONS[action]), 409)
    assert lead_row(sync_engine, other).status == "transferred"
    # a lead still waiting for its worker can be signed, not called or closed
    r = await client.post("/api/v1/leads", json=make_lead(), headers=source_headers)
    waiting = r.json()["id"]
    for action in ("tier", "calls", "close"):
        shaped(await post(client, f"{waiting}/{action}", admin, ACTIONS[action]), 409)
    assert (await post(client, f"{waiting}/sign", admin, None)).status_code == 200


async def test_override_recomputes_deadlines_and_transfer_stops_the_ladder(client, source_headers, users,
                                                                          sync_engine, run_worker):
    from tests.ladder.helpers import deadlines, events

    lead_id = await tiered(client, source_headers, run_worker, "P3", subject={"id_number": None})
    r = await post(client, f"{lead_id}/tier", users["commander"], {"tier": "P1", "reason": "老人，独居"})
    assert r.status_code == 200, r.text
    state = r.json()
    assert state["tier"] == "P1" and state["needs_call"] is True
    rows = deadlines(sync_engine, lead_id)
    assert {n: d.state for n, d in rows.items()} == {"sign": "pending", "sms": "met", "first_call": "pending",
                                                     "connected_call": "pending"}
    (ev,) = events(sync_engine, lead_id, "tier_overridden")
    assert (ev.data["from"], ev.data["to"], ev.data["reason"]) == ("P3", "P1", "老人，独居")
    assert lead_row(sync_engine, lead_id).tier_detail["policy"]["tier"] == "P3"  # what the policy said, kept
    r = await post(client, f"{lead_id}/transfer", users["admin"], {"to": "市南区反诈中心", "reason": "人在市南区"})
    assert r.status_code == 200 and r.json()["status"] == "transferred"
    assert "pending" not in {d.state for d in deadlines(sync_engine, lead_id).values()}
    assert lead_row(sync_engine, lead_id).needs_call is False
    (ev,) = events(sync_engine, lead_id, "transferred")
    assert ev.data["to"] == "市南区反诈中心"
