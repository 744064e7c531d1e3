"""倒查: a case matched to a warning gets its review when the match happens (either arrival order);
the review lists every action on every lead of the person with time and actor, each deadline met or
missed, who was told — as JSON (center roles), an .xlsx, a printable page and a monthly-report sheet."""
from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from dispatch.outcomes.reviews import verdict
from service.core import clock
from tests.ladder.helpers import lead_of, push
from workers import tasks

PHONE = "13912345678"


def _case(case_id: str, phone: str, reported_at: str = "2026-11-05T10:00:00+08:00") -> dict:
    return {"case_id": case_id, "reported_at": reported_at, "fraud_type": "online_shopping",
            "victim": {"phone": phone}, "loss_cny": 5000}


def _reviews(sync_engine) -> list:
    with sync_engine.connect() as conn:
        return conn.execute(text("SELECT c.case_id, r.lead_id, r.generated_at FROM case_review r "
                                 "JOIN case_report c ON c.id = r.case_report_id ORDER BY c.case_id")).all()


@pytest.fixture(scope="module")
async def reviewed(client, source_headers, commander, make_user, sync_engine, district, redis_url, app):
    """Two warnings about one person from two sources, worked a little (signed, a call not answered,
    a deadline let lapse by the sweep), then a case filed: one review."""
    from redis import Redis

    from workers.queues import worker_queues
    from workers.run import Worker

    async def run_worker():
        await app.state.after_commit.drain()
        redis = Redis.from_url(redis_url)
        Worker(worker_queues(redis), connection=redis).work(burst=True, with_scheduler=False)

    with sync_engine.begin() as conn:
        conn.execute(text("TRUNCATE lead, lead_event, case_report RESTART IDENTITY CASCADE"))
    first = await push(client, source_headers, lead_of("P2", subject={"phone": PHONE}))
    second = await push(client, source_headers, lead_of("P2", source="bank_fund_monitor",
                                                        pushed_at="2026-11-02T09:30:00+08:00",
                                                        subject={"phone": PHONE}))
    await run_worker()
    operator = make_user("operator")
    assert (await client.post(f"/api/v1/leads/{first}/sign", headers=operator)).status_code == 200
    r = await client.post(f"/api/v1/leads/{first}/calls", headers=operator, json={"result": "no_answer"})
    assert r.status_code == 201, r.text
    with sync_engine.begin() as conn:  # the second lead's sign-off is let lapse: the sweep finds it missed
        conn.execute(text("UPDATE lead_deadline SET due_at = :t WHERE lead_id = :l AND name = 'sign'"),
                     {"t": clock.now() - timedelta(minutes=1), "l": second})
    tasks.sweep_deadlines()
    assert _reviews(sync_engine) == []
    r = await client.post("/api/v1/cases", headers=source_headers, json=_case("RV-1", PHONE))
    assert r.status_code == 201 and r.json()["post_warning_of"]["id"] == second
    return {"first": first, "second": second, "operator": operator, "commander": commander,
            "police": make_user("police", district.teams[0]["code"]), "run_worker": run_worker}


async def test_a_match_records_its_review_with_every_action_deadline_and_person_told(client, reviewed,
                                                                                     sync_engine):
    rows = _reviews(sync_engine)
    assert [(r.case_id, r.lead_id) for r in rows] == [("RV-1", reviewed["second"])]
    r = await client.get("/api/v1/reviews/RV-1", headers=reviewed["operator"])
    assert r.status_code == 200, r.text
    rv = r.json()
    first, second = reviewed["first"], reviewed["second"]
    assert [lead["id"] for lead in rv["leads"]] == [first, second]  # both warnings of the person
    kinds = {(a["lead_id"], a["kind"]) for a in rv["actions"]}
    assert {(first, "received"), (first, "tiered"), (first, "signed"), (first, "call"), (second, "received"),
            (second, "post_warning_case")} <= kinds
    signed = next(a for a in rv["actions"] if a["kind"] == "signed")
    assert signed["actor"] == f"user:{reviewed['operator']['X-Username']}" and signed["at"]
    assert [(c["lead_id"], c["result"]) for c in rv["calls"]] == [(first, "no_answer")]
    deadlines = {(d["lead_id"], d["name"]): d["verdict"] for d in rv["deadlines"]}
    assert deadlines[(first, "sign")] == "met" and deadlines[(second, "sign")] == "missed"
    with sync_engine.connect() as conn:  # every deadline row of both leads, each with its verdict
        assert len(rv["deadlines"]) == conn.execute(text(
            "SELECT count(*) FROM lead_deadline WHERE lead_id IN (:a, :b)"), {"a": first, "b": second}).scalar()
        sms = conn.execute(text("SELECT count(*) FROM sms_message WHERE lead_id IN (:a, :b)"),
                           {"a": first, "b": second}).scalar()
    assert sms > 0 and len([t for t in rv["told"] if t["kind"] == "sms"]) == sms
    assert all(t["phone"] == "139****5678" for t in rv["told"] if t["kind"] == "sms")
    assert rv["totals"]["deadlines_missed"] >= 1 and rv["totals"]["warnings"] == 2
    assert PHONE not in r.text  # masked throughout
    assert rv["case"]["victim"]["phone"] == "139****5678"


async def test_reviews_are_for_the_center_only_and_listed(client, reviewed):
    assert (await client.get("/api/v1/reviews/RV-1", headers=reviewed["police"])).status_code == 403
    assert (await client.get("/api/v1/reviews/NOPE", headers=reviewed["operator"])).status_code == 404
    r = await client.get("/api/v1/reviews", params={"from": "2026-11-01T00:00:00+08:00",
                                                    "to": "2026-12-01T00:00:00+08:00"},
                         headers=reviewed["commander"])
    assert r.status_code == 200
    assert [(x["case_id"], x["lead"]["id"], x["deadlines_missed"]) for x in r.json()["items"]] == [
        ("RV-1", reviewed["second"], 1)]
    bad = await client.get("/api/v1/reviews", params={"from": "2026-12-01", "to": "2026-11-01"},
                           headers=reviewed["commander"])
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "from"


async def test_review_workbook_and_monthly_sheet(client, reviewed):
    r = await client.get("/api/v1/reviews/RV-1/xlsx", headers=reviewed["operator"])
    assert r.status_code == 200
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames[:4] == ["倒查 Review", "预警 Warnings", "处置过程 Actions", "时限 Deadlines"]
    rv = (await client.get("/api/v1/reviews/RV-1", headers=reviewed["operator"])).json()
    assert wb["处置过程 Actions"].max_row == 1 + len(rv["actions"])
    verdicts = [row[4] for row in wb["时限 Deadlines"].iter_rows(min_row=2, values_only=True)]
    assert "missed" in verdicts and "met" in verdicts
    assert not any(PHONE in str(c) for ws in wb for row in ws.iter_rows(values_only=True) for c in row)
    monthly = await client.get("/api/v1/reports/monthly", params={"month": "2026-11"}, headers=reviewed["operator"])
    sheet = load_workbook(io.BytesIO(monthly.content))["倒查 Reviews"]
    lines = list(sheet.iter_rows(min_row=2, values_only=True))
    assert [(x[0], x[8]) for x in lines] == [("RV-1", reviewed["second"])] and lines[0][3] == "139****5678"


async def test_a_case_before_its_warning_gets_its_review_when_the_lead_is_placed(client, source_headers,
                                                                                 reviewed, sync_engine):
    other = "13987654321"
    r = await client.post("/api/v1/cases", headers=source_headers, json=_case("RV-2", other))
    assert r.json()["post_warning_of"] is None
    assert "RV-2" not in [x.case_id for x in _reviews(sync_engine)]
    lead_id = await push(client, source_headers, lead_of("P2", subject={"phone": other}))
    await reviewed["run_worker"]()
    assert ("RV-2", lead_id) in [(x.case_id, x.lead_id) for x in _reviews(sync_engine)]
    rv = (await client.get("/api/v1/reviews/RV-2", headers=reviewed["operator"])).json()
    assert [lead["id"] for lead in rv["leads"]] == [lead_id]


async def test_the_printable_page_is_ours_alone(client):
    page = await client.get("/review")
    assert page.status_code == 200 and "倒查" in page.text
    refs = re.findall(r'(?<![:\w-])(?:src|href)="([^"]+)"', page.text)
    assert refs and all(x.startswith(("/ui/", "data:", "#")) for x in refs)
    for ref in refs:
        if ref.startswith("/ui/"):
            asset = await client.get(ref)
            assert asset.status_code == 200 and not re.search(r"https?://", asset.text), ref


def test_verdicts():
    due = "2026-11-01T10:00:00+08:00"
    row = {"due_at": due, "state": "met", "met_at": "2026-11-01T09:59:00+08:00", "acted_at": None}
    assert verdict(row) == "met"
    assert verdict({**row, "met_at": "2026-11-01T10:01:00+08:00"}) == "late"
    assert verdict({**row, "state": "missed", "met_at": None, "acted_at": "2026-11-01T10:01:00+08:00"}) == "missed"
    assert verdict({**row, "state": "cancelled", "met_at": None}) == "cancelled"
    assert verdict({**row, "state": "pending", "met_at": None}) == "pending"
