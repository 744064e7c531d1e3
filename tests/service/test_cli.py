"""The `quanzu` command as scripts use it: a process, its environment, its output and exit code."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from sqlalchemy import func, select

from dispatch.models import Team, TeamMember
from geo.models import Beat, District
from tests.data import district_dir
from tests.factories import make_lead


def quanzu(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "service.cli", *args], env={**os.environ},
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_migrate_is_idempotent(settings):
    assert "database at head" in quanzu("migrate").stderr


@pytest.mark.usefixtures("clean")
async def test_api_key_printed_alone_on_the_last_line_works(client, settings):
    key = quanzu("create-api-key", "--name", "cli-source").stdout.strip().splitlines()[-1]
    assert key.startswith("qz_") and " " not in key
    r = await client.post("/api/v1/leads", json=make_lead(), headers={"X-API-Key": key})
    assert r.status_code == 202
    again = quanzu("create-api-key", "--name", "cli-source", check=False)
    assert again.returncode == 2 and "exists already" in again.stderr


async def test_created_user_can_log_in(client, district):
    team = district.teams[0]["code"]
    quanzu("create-user", "cli-police", "--role", "police", "--team", team, "--password", "pw-9876")
    r = await client.post("/api/v1/auth/token", data={"username": "cli-police", "password": "pw-9876"})
    assert r.status_code == 200 and r.json()["role"] == "police" and r.json()["team_code"] == team
    no_team = quanzu("create-user", "x", "--role", "police", "--password", "p", check=False)
    assert no_team.returncode == 2 and "--team" in no_team.stderr
    bad_role = quanzu("create-user", "x", "--role", "boss", "--password", "p", check=False)
    assert bad_role.returncode == 2 and "unknown role" in bad_role.stderr


def test_import_district_again_updates_in_place(district, sync_engine):
    def snapshot():
        with sync_engine.connect() as conn:
            return (conn.execute(select(District.version)).scalar_one(),
                    conn.execute(select(func.count()).select_from(Beat)).scalar_one(),
                    conn.execute(select(func.count()).select_from(Team)).scalar_one(),
                    conn.execute(select(func.count()).select_from(TeamMember)).scalar_one())

    version, beats, teams, members = snapshot()
    out = quanzu("import-district", str(district_dir()))
    assert "teams" in out.stderr
    assert snapshot() == (version + 1, beats, teams, members)  # updated, nothing doubled
    assert (beats, teams, members) == (len(district.beats), len(district.teams),
                                       sum(len(t["members"]) for t in district.teams))


def test_import_district_names_what_is_wrong(tmp_path, settings):
    broken = tmp_path / "district"
    shutil.copytree(district_dir(), broken, ignore=shutil.ignore_patterns("*.jsonl"))
    teams = json.loads((broken / "teams.json").read_text(encoding="utf-8"))
    teams[0]["beat_code"] = "NOPE-01"
    (broken / "teams.json").chmod(0o644)
    (broken / "teams.json").write_text(json.dumps(teams), encoding="utf-8")
    proc = quanzu("import-district", str(broken), check=False)
    assert proc.returncode == 2 and "NOPE-01" in proc.stderr and "teams.json" in proc.stderr


async def test_accounts_belong_to_a_district_or_the_city(client, district, sync_engine):
    """`--district CODE` on create-user and create-api-key (contract.md, The district): the login says
    the district and its token carries it; a squad member belongs to the squad's district; without
    it, the city center; an unknown district is refused naming it."""
    from service.core.models import ApiKey

    quanzu("create-user", "cli-district-op", "--role", "operator", "--password", "pw-9876", "--district", district.code)
    r = await client.post("/api/v1/auth/token", data={"username": "cli-district-op", "password": "pw-9876"})
    assert r.status_code == 200 and r.json()["district_code"] == district.code
    assert (await client.get("/api/v1/queue", headers={"Authorization": f"Bearer {r.json()['access_token']}"})
            ).status_code == 200
    quanzu("create-user", "cli-city-op", "--role", "operator", "--password", "pw-9876")
    r = await client.post("/api/v1/auth/token", data={"username": "cli-city-op", "password": "pw-9876"})
    assert r.json()["district_code"] is None
    team = district.teams[1]["code"]
    quanzu("create-user", "cli-district-police", "--role", "police", "--team", team, "--password", "pw-9876")
    r = await client.post("/api/v1/auth/token", data={"username": "cli-district-police", "password": "pw-9876"})
    assert r.json()["district_code"] == district.code
    bad = quanzu("create-user", "x", "--role", "operator", "--password", "p", "--district", "999999", check=False)
    assert bad.returncode == 2 and "no district '999999'" in bad.stderr
    quanzu("create-api-key", "--name", "cli-district-key", "--district", district.code)
    with sync_engine.connect() as conn:
        assert conn.execute(select(ApiKey.district_code).where(ApiKey.name == "cli-district-key")).scalar_one() \
            == district.code
