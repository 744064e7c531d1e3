"""Least privilege as a matrix: every operation of the app's own OpenAPI × every kind of caller ×
own / other squad × own / other district, checked against one table written here (a second statement of who may do what,
which must agree with the code's). A route without a row fails the test, so a new route is decided
the day it lands. Unknown ids are 404, wrong roles 403, no credentials 401; a squad member asking
for another squad's lead or assignment gets 404, as if it did not exist, and so does a center user of
another district of the city."""
from __future__ import annotations

import re

import pytest

from service.core.auth import Role
from tests.factories import make_lead

CENTER = frozenset({"admin", "commander", "operator"})
COMMAND = frozenset({"admin", "commander"})
SQUAD = frozenset({"police", "auxiliary", "grid_worker"})
EVERYONE = CENTER | SQUAD
SOURCE = frozenset({"source"})
PUBLIC = None  # no credentials needed

# operation → who may call it (roles, "source" for an upstream API key; PUBLIC: anyone)
TABLE: dict[str, frozenset | None] = {
    "GET /healthz": PUBLIC, "GET /readyz": PUBLIC, "GET /metrics": PUBLIC, "POST /api/v1/auth/token": PUBLIC,
    "POST /api/v1/auth/logout": EVERYONE,
    "POST /api/v1/leads": CENTER | SOURCE, "POST /api/v1/leads/batch": CENTER | SOURCE,
    "GET /api/v1/leads": EVERYONE, "GET /api/v1/leads/{lead_id}": EVERYONE,
    "GET /api/v1/rejections": CENTER, "POST /api/v1/policy/replay": COMMAND,
    "POST /api/v1/leads/{lead_id}/sign": CENTER, "POST /api/v1/leads/{lead_id}/tier": COMMAND,
    # 移交 (issue 23): an operator hands a lead over to a district of the city (reviewed by a commander when
    # the policy says so); only a commander sends one outside the city (decided in the flow: 403)
    "POST /api/v1/leads/{lead_id}/transfer": CENTER, "POST /api/v1/leads/{lead_id}/close": CENTER,
    "POST /api/v1/leads/{lead_id}/transfer/accept": CENTER, "POST /api/v1/leads/{lead_id}/transfer/refuse": CENTER,
    "GET /api/v1/transfers": CENTER, "POST /api/v1/transfers/{transfer_id}/approve": COMMAND,
    "POST /api/v1/transfers/{transfer_id}/reject": COMMAND,
    "GET /api/v1/calls/queue": CENTER, "POST /api/v1/calls/next": CENTER,
    "DELETE /api/v1/leads/{lead_id}/claim": CENTER, "POST /api/v1/leads/{lead_id}/calls": CENTER,
    "GET /api/v1/callbacks/due": CENTER, "POST /api/v1/leads/{lead_id}/callbacks": CENTER,
    # the SMS gateway's key alone (create-api-key --gateway): no source's key, no person
    "POST /api/v1/sms/receipts": frozenset(),
    "POST /api/v1/leads/{lead_id}/assign": CENTER, "GET /api/v1/leads/{lead_id}/candidates": CENTER,
    "GET /api/v1/geo/beats": EVERYONE | SOURCE, "GET /api/v1/geo/streets": EVERYONE | SOURCE,
    "GET /api/v1/geo/locate": EVERYONE | SOURCE,
    "PUT /api/v1/teams/me/status": SQUAD, "POST /api/v1/teams/me/location": SQUAD,
    "GET /api/v1/teams": EVERYONE, "GET /api/v1/teams/{code}": EVERYONE,
    "GET /api/v1/assignments": EVERYONE, "GET /api/v1/assignments/{assignment_id}": EVERYONE,
    "POST /api/v1/assignments/{assignment_id}/accept": SQUAD,
    "POST /api/v1/assignments/{assignment_id}/decline": SQUAD,
    "POST /api/v1/assignments/{assignment_id}/arrive": SQUAD,
    "POST /api/v1/assignments/{assignment_id}/checkin": SQUAD,
    "POST /api/v1/assignments/{assignment_id}/complete": SQUAD,
    "POST /api/v1/cases": CENTER | SOURCE, "POST /api/v1/cases/batch": CENTER | SOURCE,
    "GET /api/v1/cases/{case_id}": CENTER, "GET /api/v1/stats": CENTER, "GET /api/v1/stats/ranking": CENTER,
    "POST /api/v1/people/history": CENTER, "GET /api/v1/people/{person_id}": CENTER,
    "POST /api/v1/people/{person_id}/split": COMMAND, "GET /api/v1/reports/monthly": CENTER,
    "GET /api/v1/queue": CENTER, "GET /api/v1/alarms": CENTER, "POST /api/v1/alarms/{alarm_id}/ack": CENTER,
    "GET /api/v1/leads/{lead_id}/family": EVERYONE, "POST /api/v1/leads/{lead_id}/family": EVERYONE,
    "GET /api/v1/leads/{lead_id}/stop-payments": CENTER, "POST /api/v1/leads/{lead_id}/stop-payments": CENTER,
    "POST /api/v1/stop-payments/{request_id}/answer": CENTER,
    "POST /api/v1/leads/{lead_id}/dial": CENTER, "GET /api/v1/dials/{dial_id}": CENTER,
    "POST /api/v1/calls/{call_id}/outcome": CENTER, "POST /api/v1/calls/results": SOURCE,
    # Kannel's callbacks carry the gateway's key in the query (Kannel cannot send headers): checked inside
    "GET /api/v1/sms/kannel/dlr": PUBLIC, "GET /api/v1/sms/kannel/mo": PUBLIC,
    # 倒查 and 反馈 (issue 22): the reviews are the center's; the sources' feedback URLs the admin's
    "GET /api/v1/reviews": CENTER, "GET /api/v1/reviews/{case_id}": CENTER,
    "GET /api/v1/reviews/{case_id}/xlsx": CENTER, "GET /api/v1/feedback/sources": frozenset({"admin"}),
    "GET /api/v1/feedback/dead": CENTER, "POST /api/v1/feedback/dead/{delivery_id}/retry": COMMAND,
}
# Squad-scoped ids: another squad's record is 404 to a squad member.
SCOPED = {"lead_id", "assignment_id"}
# Valid bodies where an empty one would be refused (422) before the record is looked up.
BODIES = {"POST /api/v1/assignments/{assignment_id}/complete": {"outcome": "dissuaded", "met_in_person": True},
          "POST /api/v1/leads/{lead_id}/family": {"name": "张三", "relation": "子女", "phone": "13900000000"}}
CALLERS = ["anonymous", "source", *[r.value for r in Role]]


def _operations() -> list[str]:
    from service.core.settings import Settings
    from service.main import create_app

    doc = create_app(Settings(log_level="WARNING")).openapi()
    return sorted(f"{m.upper()} {p}" for p, ops in doc["paths"].items() for m in ops)


OPERATIONS = _operations()


def test_every_operation_has_a_row_and_every_row_an_operation():
    assert sorted(set(OPERATIONS) - set(TABLE)) == [], "decide who may call these: add them to TABLE"
    assert sorted(set(TABLE) - set(OPERATIONS)) == [], "rows for operations that no longer exist"


@pytest.fixture(scope="module")
async def world(client, source_headers, commander, make_user, run_worker, district, sync_engine, redis_url):
    """Two leads, each offered to a different squad; a caller of every role (squad members of the first)."""
    from tests.conftest import wipe

    wipe(sync_engine, redis_url)
    teams = [t["code"] for t in district.teams[:2]]
    r = await client.post("/api/v1/leads/batch", json={"leads": [make_lead(risk_level=2), make_lead(risk_level=2)]},
                          headers=source_headers)
    leads = [x["id"] for x in r.json()["results"]]
    await run_worker()
    assignments = []
    for lead_id, team in zip(leads, teams):
        r = await client.post(f"/api/v1/leads/{lead_id}/assign", json={"team_code": team}, headers=commander)
        assert r.status_code == 200, r.text
        assignments.append(r.json()["id"])
    callers = {"anonymous": {}, "source": dict(source_headers)}
    for role in Role:
        h = make_user(role.value, team=teams[0] if role.value in SQUAD else None)
        callers[role.value] = {"Authorization": h["Authorization"]}
    r = await client.post(f"/api/v1/assignments/{assignments[0]}/accept", headers=callers["police"])
    assert r.status_code == 200, r.text  # taken on: the squad now reads its lead in full
    return {"own": {"lead_id": leads[0], "assignment_id": assignments[0]},
            "other": {"lead_id": leads[1], "assignment_id": assignments[1]}, "callers": callers, "team": teams[0],
            "districts": {where: {role: _district_user(sync_engine, role, code) for role in CENTER}
                          for where, code in (("own", district.code), ("other", OTHER_DISTRICT))}}


OTHER_DISTRICT = "999999"  # a district of the city that owns none of the world's rows


def _district_user(sync_engine, role: str, code: str) -> dict:
    """Headers of a center-role user of district `code` (the city center's users have none)."""
    import uuid

    from service.core.auth import create_access_token, hash_password
    from service.core.db import sync_session
    from service.core.models import User
    from service.core.settings import get_settings

    name = f"{role}-{code}-{uuid.uuid4().hex[:6]}"
    with sync_session(sync_engine) as session:
        session.add(User(username=name, password_hash=hash_password("pw-123456"), role=role, district_code=code))
        session.commit()
    return {"Authorization": "Bearer " + create_access_token(name, role, None, get_settings().secret_key, 60,
                                                              district=code)}


def _fill(path: str, ids: dict, team: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m[1], team if m[1] == "code" else 999_999)), path)


@pytest.mark.parametrize("operation", OPERATIONS)
async def test_each_caller_gets_what_the_table_says(operation, world, client, make_user):
    method, path = operation.split(" ", 1)
    allowed = TABLE[operation]
    wrong: list[str] = []
    for caller in CALLERS:
        headers = world["callers"][caller]
        if path.endswith("/auth/logout") and caller in EVERYONE:  # it ends the token: a caller of its own
            headers = {"Authorization": make_user(caller, team=world["team"] if caller in SQUAD else None)
                       ["Authorization"]}
        r = await client.request(method, _fill(path, world["own"], world["team"]), headers=headers,
                                 **({"json": {}} if method in ("POST", "PUT") and "auth/token" not in path else {}))
        code = r.status_code
        if allowed is PUBLIC:
            ok = code not in (401, 403) or "kannel" in path  # Kannel's routes answer 401/403 to a wrong key
        elif caller == "anonymous":
            ok = code == 401
        elif caller not in allowed:
            ok = code == 403
        else:
            ok = code not in (401, 403) and not (code == 404 and caller in SQUAD and set(re.findall(r"\{(\w+)\}", path)) & SCOPED)
        if not ok:
            wrong.append(f"{caller}: {code} {r.text[:120]}")
        scoped = set(re.findall(r"\{(\w+)\}", path)) & SCOPED
        if allowed and caller in SQUAD and caller in allowed and scoped:
            r = await client.request(method, _fill(path, world["other"], world["team"]), headers=headers,
                                     **({"json": BODIES.get(operation, {})} if method in ("POST", "PUT") else {}))
            if r.status_code != 404:
                wrong.append(f"{caller} on another squad's record: {r.status_code} {r.text[:120]}")
        if allowed and caller in CENTER and caller in allowed and scoped:  # own district: as the city; other: 404
            for where in ("own", "other"):
                r = await client.request(method, _fill(path, world["own"], world["team"]),
                                         headers=world["districts"][where][caller],
                                         **({"json": BODIES.get(operation, {})} if method in ("POST", "PUT") else {}))
                if (r.status_code == 404) != (where == "other") or r.status_code in (401, 403):
                    wrong.append(f"{caller} of the {where} district: {r.status_code} {r.text[:120]}")
    assert not wrong, wrong
