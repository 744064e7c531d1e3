"""The generator: seeded, plausible proportions, placed where it says; live over HTTP; bulk COPY."""
from __future__ import annotations

from collections import Counter

import httpx
import psycopg
import pytest
from sqlalchemy import text

from service.core.db import sync_session
from service.core.settings import plain_url
from service.tools import simulate as sim
from service.tools.simulate_bulk import bulk_load
from service.tools.simulate_live import run_live


@pytest.fixture(scope="module")
def area(sync_engine, district) -> sim.Area:
    with sync_session(sync_engine) as session:
        return sim.Area.load(session)


def test_seeded_and_plausible(area):
    a = [x.wire for x in sim.Generator(area, seed=3).leads(3000)]
    b = [x.wire for x in sim.Generator(area, seed=3).leads(3000)]
    assert a == b
    leads = list(sim.Generator(area, seed=3).leads(3000))
    kinds = Counter(x.kind for x in leads)
    assert 0.015 < kinds["duplicate"] / 3000 < 0.05 and 0.01 < kinds["defect"] / 3000 < 0.035
    crs = Counter(x.wire["location"]["crs"] for x in leads if x.wire["location"])
    assert set(crs) >= {"wgs84", "gcj02", "bd09"}
    assert set(Counter(x.wire["source"] for x in leads)) == set(sim.SOURCES)
    people = Counter(x.person.phone for x in leads if x.kind == "ok")
    assert 0.02 < sum(n - 1 for n in people.values()) / 3000 < 0.12  # repeat warnings of the same person
    assert 0.02 < sum(x.beat is None for x in leads) / 3000 < 0.08  # outside the district
    g = sim.Generator(area, seed=5)
    results = [r for lead in g.leads(2000) for _t, r in g.calls(lead, ["call"])]
    failed = sum(r != "connected" for r in results) / len(results)
    assert 0.3 < failed < 0.5  # about 40% of calls refused or unanswered


@pytest.mark.usefixtures("clean")
async def test_generated_leads_land_where_generated(client, source_headers, run_worker, sync_engine, area):
    leads = list(sim.Generator(area, seed=11).leads(400))
    r = await client.post("/api/v1/leads/batch", json={"leads": [x.wire for x in leads]}, headers=source_headers)
    verdicts = [x["status"] for x in r.json()["results"]]
    expect = {"ok": "accepted", "duplicate": "duplicate", "defect": "rejected"}
    assert verdicts == [expect[x.kind] for x in leads]
    await run_worker()
    with sync_engine.connect() as conn:
        placed = dict(conn.execute(text("SELECT source_id, beat_code FROM lead WHERE loc_lon IS NOT NULL")).all())
    wrong = [x for x in leads if x.kind == "ok" and x.wire["location"] and x.beat is not None
             and placed[x.wire["source_id"]] != area.beats[x.beat][0]]
    assert not wrong  # GCJ-02 and BD-09 points converted back land in the generator's beat


@pytest.mark.usefixtures("clean")
async def test_live_run_over_http(app, source_headers, make_user, sync_engine, area):
    operator = make_user("operator")
    token = operator["Authorization"].split()[1]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        beats = (await client.get("/api/v1/geo/beats", headers=operator)).json()
        live_area = sim.Area.from_beats_geojson(beats)
        assert live_area.region == area.region and len(live_area.beats) == len(area.beats)
        report = await run_live(client, sim.Generator(live_area, seed=2), leads=80, speed=1e12,
                                api_key=source_headers["X-API-Key"], token=token)
    with sync_engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM lead")).scalar()
        cases = conn.execute(text("SELECT count(*) FROM case_report")).scalar()
    assert stored == report.leads == report.answers["POST /leads 202"] > 60
    assert cases == report.cases
    # call results and callbacks go to h3's endpoints; on a branch without them they are answered, not lost
    assert sum(n for k, n in report.answers.items() if "/calls" in k) > 0


@pytest.mark.usefixtures("clean")
async def test_bulk_load_is_counted_by_stats(client, commander, sync_engine, database_url, area):
    with psycopg.connect(plain_url(database_url)) as conn:
        report = bulk_load(conn, area, 3000, seed=4)
        conn.commit()
    assert report.leads == 3000 and report.rows["call_attempt"] > 1000
    r = await client.get("/api/v1/stats", params={"group_by": "street", "from": "2026-09-01T00:00:00+08:00",
                                                  "to": "2026-12-31T00:00:00+08:00"}, headers=commander)
    total = r.json()["total"]
    assert total["leads"] == 3000
    assert 0.7 < total["connection_rate"] < 0.98 and total["visits_done"] > 0 and total["callbacks_done"] > 0
    with sync_engine.connect() as conn:
        matched = conn.execute(text("SELECT count(*) FROM case_report WHERE post_warning_lead_id IS NOT NULL")).scalar()
    assert matched == report.rows["case_report"] == total["post_warning_cases"] > 0


@pytest.mark.usefixtures("clean")
async def test_cli_simulate_bulk_and_report_write_the_same_workbook(client, commander, settings, district, tmp_path):
    from openpyxl import load_workbook

    from tests.service.test_cli import quanzu

    assert "bulk-loaded 500 leads" in quanzu("simulate", "--bulk", "--leads", "500", "--seed", "9").stderr
    out = tmp_path / "oct.xlsx"
    assert quanzu("report", "--month", "2026-10", "--out", str(out)).stdout.strip() == str(out)
    api = await client.get("/api/v1/reports/monthly", params={"month": "2026-10"}, headers=commander)
    from_cli, from_api = load_workbook(out), load_workbook(__import__("io").BytesIO(api.content))
    assert from_cli.sheetnames == from_api.sheetnames
    for name in from_cli.sheetnames:
        assert list(from_cli[name].values) == list(from_api[name].values), name
    assert dict(list(from_cli["汇总 Summary"].values)[2:])["线索 leads"] > 0
    assert quanzu("report", "--month", "2026-13", check=False).returncode == 2
