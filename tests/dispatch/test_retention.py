"""Retention (PIPL): `quanzu purge` blanks the personal data of what the policy no longer lets us
keep, records it in the audit chain (which still verifies), and leaves the KPIs computable."""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from dispatch.audit import run_verify
from service.cli import app as cli
from tests.factories import make_lead

RANGE = {"from": "2020-01-01T00:00:00+08:00", "to": "2030-01-01T00:00:00+08:00"}


@pytest.mark.usefixtures("district", "clean")
async def test_purge_blanks_what_is_past_retention_and_the_chain_and_kpis_hold(
        client, source_headers, commander, run_worker, sync_engine, settings, database_url):
    leads = [make_lead() for _ in range(5)]
    r = await client.post("/api/v1/leads/batch", json={"leads": leads}, headers=source_headers)
    ids = [x["id"] for x in r.json()["results"]]
    await run_worker()
    for lead_id in ids[:4]:
        r = await client.post(f"/api/v1/leads/{lead_id}/close", headers=commander,
                              json={"outcome": "dissuaded", "note": "已劝阻 张三 13812345678"})
        assert r.status_code == 200, r.text
    old, recent, still_open = ids[:3], ids[3], ids[4]
    with sync_engine.begin() as conn:  # three were closed four years ago; a case of one of them six years ago
        conn.execute(text("UPDATE lead SET closed_at = now() - interval '4 years' WHERE id = ANY(:ids)"),
                     {"ids": old})
        phone = conn.execute(text("SELECT phone FROM lead WHERE id = :i"), {"i": old[0]}).scalar()
    r = await client.post("/api/v1/cases", headers=source_headers, json={
        "case_id": "K-old", "reported_at": "2020-06-01T10:00:00+08:00", "victim": {"phone": phone},
        "fraud_type": "other", "loss_cny": 100})
    assert r.status_code in (200, 201, 202), r.text
    before = (await client.get("/api/v1/stats", params={"group_by": "tier", **RANGE}, headers=commander)).json()
    assert sum(row["leads"] for row in before["rows"]) == 5

    dry = CliRunner().invoke(cli, ["purge", "--dry-run"])
    assert dry.exit_code == 0 and "due: 3 leads" in dry.output and "1 cases" in dry.output, dry.output
    done = CliRunner().invoke(cli, ["purge"])
    assert done.exit_code == 0 and "purged: 3 leads" in done.output, done.output

    with sync_engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(text(
            "SELECT id, phone, name, id_number, lon, loc_lon, close_note, counterpart, flags, outcome, tier, "
            "beat_code FROM lead"))}
        sms = dict(conn.execute(text("SELECT lead_id, to_phone FROM sms_message")).all())
        events = conn.execute(text("SELECT lead_id FROM lead_event WHERE kind = 'personal_data_purged'")).scalars()
        case = conn.execute(text("SELECT victim_phone, victim_id_number FROM case_report")).one()
    for i in old:
        r = rows[i]
        assert (r.phone, r.name, r.id_number, r.lon, r.loc_lon, r.close_note, r.counterpart) == (
            None, None, None, None, None, None, {})
        assert "purged" in r.flags and r.outcome == "dissuaded" and r.tier and r.beat_code  # the KPIs' facts stay
        assert sms.get(i, "") == ""
    for i in (recent, still_open):
        assert rows[i].phone and rows[i].name and "purged" not in rows[i].flags
    assert sorted(events) == sorted(old)
    assert tuple(case) == (None, None)

    after = (await client.get("/api/v1/stats", params={"group_by": "tier", **RANGE}, headers=commander)).json()
    strip = [{k: v for k, v in row.items() if k != "people"} for row in before["rows"]]
    assert [{k: v for k, v in row.items() if k != "people"} for row in after["rows"]] == strip

    assert not any(r.broken for r in run_verify(database_url, settings, seal_first=True))
    again = CliRunner().invoke(cli, ["purge"])
    assert "purged: 0 leads" in again.output, again.output


def test_retention_shorter_than_a_day_is_refused():
    import tomllib
    from importlib import resources

    from dispatch.policy import load_policy, parse_policy
    doc = tomllib.loads(resources.files("dispatch").joinpath("policy.toml").read_text(encoding="utf-8"))
    doc["retention"] = {"leads": "2h"}
    with pytest.raises(ValueError, match="retention.leads"):
        parse_policy(doc)
    assert load_policy().retention.leads == timedelta(days=1095)
