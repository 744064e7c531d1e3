"""Issue 24, trust: the secret key, tokens that end, sign-in limits, API keys bound to sources."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, text

from service.core.auth import create_access_token
from service.core.settings import DEV_SECRET, secret_problem
from tests.factories import make_lead

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "pw-123456"  # conftest make_user's


# ---------------------------------------------------------------- the secret key
def test_secret_problem_refuses_the_development_key_short_and_repetitive_keys():
    assert "not set" in secret_problem(DEV_SECRET)
    assert "needs at least 32" in secret_problem("x" * 16 + "abcdefgh")
    assert "repeats" in secret_problem("ab" * 40)
    assert secret_problem("kQ3v9Zr1-Xn0Lw7Yt2Pb8Mc5Hd6Jf4Gs_AeUoIi") is None


@pytest.mark.parametrize("command", ["serve", "worker"])
@pytest.mark.parametrize("secret", [None, "short-secret-1234", DEV_SECRET])
def test_serve_and_worker_refuse_to_start_without_a_real_secret_key(settings, command, secret):
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env.update(DATABASE_URL=settings.database_url, REDIS_URL=settings.redis_url, PYTHONPATH=str(ROOT))
    if secret is not None:
        env["SECRET_KEY"] = secret
    done = subprocess.run([sys.executable, "-m", "service.cli", command, "--port", "1"] if command == "serve" else
                          [sys.executable, "-m", "service.cli", command, "--burst"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "SECRET_KEY" in lines[0], done.stderr


def test_embedded_servers_sign_with_a_key_of_their_own(tmp_path):
    # In a process of its own: require_secret sets SECRET_KEY and reads the settings again, which in
    # this one would leave later tests' workers on a copy apart from the `settings` the tests patch.
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    env.update(STATE_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    script = "import os; from service.cli.common import require_secret; require_secret(); print(os.environ['SECRET_KEY'])"

    def key_chosen() -> str:
        done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    key = key_chosen()
    assert secret_problem(key) is None and key != DEV_SECRET
    assert (tmp_path / "secret_key").read_text().strip() == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0
    assert key_chosen() == key  # the same key next time: tokens survive a restart


async def test_a_token_signed_with_the_development_key_is_refused(client, make_user, settings):
    h = make_user("commander")
    assert (await client.get("/api/v1/leads", headers=h)).status_code == 200
    forged = create_access_token(h["X-Username"], "admin", None, DEV_SECRET, 60)
    r = await client.get("/api/v1/leads", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"


# ---------------------------------------------------------------- tokens that end
async def login(client, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/token", data={"username": username, "password": password})


def bearer(r: httpx.Response) -> dict:
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_logout_ends_the_token_and_a_new_sign_in_works(client, make_user, sync_engine):
    name = make_user("operator")["X-Username"]
    h = bearer(await login(client, name))
    assert (await client.get("/api/v1/leads", headers=h)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=h)).json() == {"ok": True}
    r = await client.get("/api/v1/leads", headers=h)
    assert r.status_code == 401 and "sign in again" in r.json()["detail"]
    assert (await client.post("/api/v1/auth/logout", headers=h)).status_code == 401
    with sync_engine.connect() as conn:
        assert conn.execute(text("SELECT token_version FROM app_user WHERE username = :u"), {"u": name}).scalar() == 1
    again = bearer(await login(client, name))
    assert (await client.get("/api/v1/leads", headers=again)).status_code == 200


async def test_deactivation_a_role_change_or_a_new_password_end_every_earlier_token(client, make_user):
    from service.cli import access, admin

    for change in ({"active": False}, {"role": "commander"}, {"password": "another-pw-1"}):
        name = make_user("operator")["X-Username"]
        h = bearer(await login(client, name))
        access.update_user(name, **change)
        assert (await client.get("/api/v1/leads", headers=h)).status_code == 401, change
    name = make_user("operator")["X-Username"]
    h = bearer(await login(client, name))
    admin.create_user(name, role="operator", password="yet-another-pw")  # create-user on an existing user
    assert (await client.get("/api/v1/leads", headers=h)).status_code == 401
    assert (await login(client, name, "yet-another-pw")).status_code == 200


def test_a_command_run_in_process_keeps_the_process_s_settings(make_user):
    """Worker code here reads get_settings(), while the app and the tests' monkeypatches hold the
    object it returned: a command that swapped it for a fresh copy left later workers on defaults."""
    from service.cli import access
    from service.core.settings import get_settings

    before = get_settings()
    access.update_user(make_user("operator")["X-Username"], password="another-pw-2")
    assert get_settings() is before


# ---------------------------------------------------------------- sign-in limits
@pytest.fixture
def limits(app, settings, redis_url):
    """Fresh counters; the real settings (5 per account+address, 20 per account, 50 per address)."""
    from redis import Redis

    from service.core.redis import key
    r = Redis.from_url(redis_url)
    for k in r.scan_iter(key("signin:*")):
        r.delete(k)
    return r


def client_at(app, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)), base_url="http://t")


async def test_wrong_passwords_lock_the_account_at_that_address_growing(app, limits, make_user):
    from service.core.redis import key

    name = make_user("operator")["X-Username"]
    async with client_at(app, "10.1.1.1") as attacker, client_at(app, "10.2.2.2") as desk:
        for _ in range(5):
            assert (await login(attacker, name, "wrong")).status_code == 401
        r = await login(attacker, name)  # even the right password: locked here
        assert r.status_code == 429 and r.json()["error"] == "too_many_requests"
        assert 290 <= int(r.headers["retry-after"]) <= 300
        assert (await login(desk, name)).status_code == 200  # the officer at their own desk gets in
        limits.delete(key(f"signin:lock:pair:10.1.1.1|{name}"))  # as if five minutes had passed
        for _ in range(5):
            assert (await login(attacker, name, "wrong")).status_code == 401
        r = await login(attacker, name)
        assert r.status_code == 429 and 590 <= int(r.headers["retry-after"]) <= 600  # doubled


async def test_guessing_from_many_addresses_locks_the_account_briefly_and_130_tries_never_get_in(
        app, limits, make_user):
    name = make_user("operator")["X-Username"]
    statuses = []
    for i in range(130):
        async with client_at(app, f"10.9.{i // 4}.{i % 4}") as c:
            statuses.append((await login(c, name, f"guess-{i}")).status_code)
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    async with client_at(app, "10.3.3.3") as desk:
        r = await login(desk, name)
    assert r.status_code == 429 and int(r.headers["retry-after"]) <= 300  # never longer than the base lock


async def test_one_address_guessing_over_many_accounts_is_locked(app, limits, make_user):
    async with client_at(app, "10.4.4.4") as c:
        answers = [(await login(c, f"nobody-{i}", "x")).status_code for i in range(51)]
    assert answers[:50] == [401] * 50 and answers[50] == 429


async def test_an_unknown_username_costs_the_same_password_hash_as_a_known_one(client, make_user, limits,
                                                                                monkeypatch):
    from service import auth_router

    calls: list[str] = []
    real = auth_router.verify_password

    def counting(password, hashed):
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(auth_router, "verify_password", counting)
    name = make_user("operator")["X-Username"]
    assert (await login(client, name, "wrong")).status_code == 401
    assert (await login(client, "no-such-user-anywhere", "wrong")).status_code == 401
    assert len(calls) == 2 and all(h.startswith("$argon2") for h in calls)


# ---------------------------------------------------------------- API keys
def new_key(capsys, name: str, *sources: str, gateway: bool = False) -> dict:
    from service.cli import admin

    admin.create_api_key(name, source=list(sources) or None, gateway=gateway)
    return {"X-API-Key": capsys.readouterr().out.strip().splitlines()[-1]}


async def test_a_key_bound_to_a_source_pushes_only_as_that_source(client, capsys, clean, district, run_worker):
    bank = new_key(capsys, "bank-only", "bank_fund_monitor")
    r = await client.post("/api/v1/leads", json=make_lead(source="national_platform"), headers=bank)
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "source"
    assert "national_platform" in r.json()["detail"][0]["message"]
    r = await client.post("/api/v1/leads", json=make_lead(source="bank_fund_monitor"), headers=bank)
    assert r.status_code == 202
    batch = [make_lead(source="bank_fund_monitor"), make_lead(source="alarm_110"), make_lead(source="bank_fund_monitor")]
    results = (await client.post("/api/v1/leads/batch", json={"leads": batch}, headers=bank)).json()["results"]
    assert [x["status"] for x in results] == ["accepted", "rejected", "accepted"]
    assert results[1]["index"] == 1 and results[1]["errors"][0]["field"] == "source"
    case = {"case_id": "C-KEY-1", "reported_at": "2026-11-02T10:00:00+08:00", "victim": {"phone": "13800000000"}}
    r = await client.post("/api/v1/cases", json=case, headers=bank)
    assert r.status_code == 403 and "--source cases" in r.json()["detail"]
    assert (await client.post("/api/v1/cases", json=case, headers=new_key(capsys, "cases", "cases"))).status_code \
        in (200, 201)

    # call results: as another source, or about another source's lead
    call = {"result": "connected", "at": "2026-11-02T10:00:00+08:00"}
    other = make_lead(source="alarm_110")
    await run_worker()
    r = await client.post("/api/v1/calls/results", json={**call, "source": "alarm_110",
                                                          "source_id": other["source_id"]}, headers=bank)
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "source"
    pushed = await client.post("/api/v1/leads", json=other, headers=new_key(capsys, "alarm", "alarm_110"))
    r = await client.post("/api/v1/calls/results", json={**call, "lead_id": pushed.json()["id"]}, headers=bank)
    assert r.status_code == 403 and r.json()["detail"][0]["field"] == "lead_id"


async def test_the_sms_gateway_s_key_cannot_push_leads(client, capsys, clean, district):
    gw = new_key(capsys, "kannel-gw", gateway=True)
    r = await client.post("/api/v1/leads", json=make_lead(), headers=gw)
    assert r.status_code == 403 and "gateway" in r.json()["detail"]
    assert (await client.get("/api/v1/geo/beats", headers=gw)).status_code == 403
    r = await client.post("/api/v1/sms/receipts", json={"message_id": "nope", "status": "delivered"}, headers=gw)
    assert r.status_code not in (401, 403), r.text  # its own route lets it in
    r = await client.get("/api/v1/sms/kannel/dlr", params={"key": gw["X-API-Key"], "id": 999999, "status": 1})
    assert r.status_code not in (401, 403), r.text


async def test_keys_are_listed_revoked_at_once_and_their_use_recorded(app, client, capsys, clean, district,
                                                                      sync_engine):
    from service.cli import access
    from service.core.models import ApiKey

    h = new_key(capsys, "national", "national_platform")
    assert (await client.post("/api/v1/leads", json=make_lead(), headers=h)).status_code == 202
    with sync_engine.connect() as conn:
        used = conn.execute(select(ApiKey.last_used_at).where(ApiKey.name == "national")).scalar()
    assert used is not None
    assert (await client.post("/api/v1/leads", json=make_lead(), headers=h)).status_code == 202
    with sync_engine.connect() as conn:  # at most once a minute: the hot path writes nothing more
        assert conn.execute(select(ApiKey.last_used_at).where(ApiKey.name == "national")).scalar() == used

    access.list_api_keys()
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "national" in x)
    assert h["X-API-Key"][:8] in line and "national_platform" in line and used.astimezone().strftime("%H:%M") in line

    access.revoke_api_key("national")
    for _ in range(100):  # the hub hears the announcement: within milliseconds, not API_KEY_CACHE_SECONDS
        r = await client.post("/api/v1/leads", json=make_lead(), headers=h)
        if r.status_code == 401:
            break
        await asyncio.sleep(0.02)
    assert r.status_code == 401
    access.list_api_keys()
    line = next(x for x in capsys.readouterr().out.splitlines() if "national" in x)
    assert line.split()[-1] != "-"  # revoked when


# ---------------------------------------------------------------- strict input
async def test_a_string_is_not_a_number_or_a_boolean_in_a_body(client, make_user, source_headers, district):
    operator, police = make_user("operator"), make_user("police", district.teams[0]["code"])

    async def refused(path: str, body: dict, headers: dict, field: str) -> None:
        r = await client.post(path, json=body, headers=headers)
        assert r.status_code == 422, (path, r.text)
        assert field in [d["field"] for d in r.json()["detail"]], (path, r.json())

    await refused("/api/v1/leads", make_lead(risk_level="1"), source_headers, "risk_level")
    await refused("/api/v1/leads/999999/close", {"outcome": "dissuaded", "loss_cny": "5"}, operator, "loss_cny")
    await refused("/api/v1/calls/results", {"source": "national_platform", "source_id": "x", "result": "connected",
                                            "at": "2026-11-02T10:00:00+08:00", "duration_s": "30"},
                  source_headers, "duration_s")
    await refused("/api/v1/teams/me/location", {"lon": "120.1", "lat": 36.0}, police, "lon")
    await refused("/api/v1/cases", {"case_id": "C-STRICT", "reported_at": "2026-11-02T10:00:00+08:00",
                                    "victim": {"phone": "13800000000"}, "loss_cny": "100"}, source_headers, "loss_cny")
    # numbers as numbers, times as ISO strings, enums as their values: still taken
    r = await client.post("/api/v1/leads/999999/close", json={"outcome": "dissuaded", "loss_cny": 5, "saved_cny": 2.5},
                          headers=operator)
    assert r.status_code == 404, r.text
    r = await client.post("/api/v1/teams/me/location", json={"lon": 120, "lat": 36.05, "at": "2026-11-02T10:00:00+08:00"},
                          headers=police)
    assert r.status_code != 422, r.text


def test_the_visit_check_list_takes_booleans_only():
    from pydantic import ValidationError

    from dispatch.field.schemas import CompleteIn

    ok = CompleteIn.model_validate({"outcome": "dissuaded", "met_in_person": True, "checklist": {"look": {"chat_apps": True}}})
    assert ok.checklist.look.chat_apps is True
    for bad, loc in (({"met_in_person": "true"}, ("met_in_person",)),
                     ({"met_in_person": 1}, ("met_in_person",)),
                     ({"met_in_person": True, "checklist": {"look": {"chat_apps": "yes"}}}, ("checklist", "look", "chat_apps"))):
        with pytest.raises(ValidationError) as err:
            CompleteIn.model_validate({"outcome": "dissuaded", **bad})
        assert err.value.errors()[0]["loc"] == loc


async def test_a_policy_is_parsed_bounded_by_the_api_and_the_cli(client, make_user, tmp_path):
    import typer

    from service.cli.policy import check_policy

    commander = make_user("commander")
    for deep in ("a = " + "[" * 20 + "]" * 20, "a = " + "[" * 100_000, "a = " + "{b = " * 5000 + "1" + "}" * 5000):
        r = await client.post("/api/v1/policy/replay", headers=commander, json={"policy": deep})
        assert r.status_code == 422, r.text
        (d,) = r.json()["detail"]
        assert d["field"] == "policy" and "nested too deeply" in d["message"]
        f = tmp_path / "deep.toml"
        f.write_text(deep)
        with pytest.raises(typer.Exit) as ex:
            check_policy(f)
        assert ex.value.exit_code == 2
    big = tmp_path / "big.toml"
    big.write_text("# padding\n" * 40_000)
    with pytest.raises(typer.Exit):
        check_policy(big)
