"""KPIs: /stats recomputed from the raw rows with SQL of the test's own, for every group_by; the
ranking; a person's history; the monthly workbook opened and compared with /stats."""
from __future__ import annotations

import io
import json
import random
from collections import defaultdict
from datetime import datetime, timedelta

import numpy as np
import pytest
from openpyxl import load_workbook
from sqlalchemy import text

from dispatch.outcomes import kpi
from tests.conftest import wipe
from tests.data import shared_file
from tests.factories import INSIDE

GROUPS = ("street", "beat", "team", "tier", "fraud_type", "source", "day")
RANGE = {"from": "2026-09-01T00:00:00+08:00", "to": "2026-12-01T00:00:00+08:00"}


def _leads(n: int) -> list[dict]:
    with shared_file("leads.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line, _ in zip(f, range(n))]


def _outcome_rows(conn, seed: int = 14) -> None:
    """What the ladder and field dispatch would have written, made up here as raw rows."""
    rng = random.Random(seed)
    # The workers' own ladder and dispatch rows of these leads go first: the rows below are the whole
    # truth the KPIs are recomputed from.
    conn.execute(text("TRUNCATE lead_deadline, call_attempt, sms_message, callback, offer_delivery, assignment, visit CASCADE"))
    conn.execute(text("UPDATE lead SET received_at = pushed_at + interval '3 seconds'"))
    leads = conn.execute(text("SELECT id, received_at, warning_type, beat_code FROM lead ORDER BY id")).all()
    teams = [t for (t,) in conn.execute(text("SELECT code FROM team ORDER BY code")).all()]
    now = datetime.now().astimezone()
    for lead_id, received, wtype, beat in leads:
        r = rng.random()
        if r < 0.8:
            signed = received + timedelta(seconds=rng.randint(10, 600))
            conn.execute(text("UPDATE lead SET signed_at = :t WHERE id = :id"), {"t": signed, "id": lead_id})
        if rng.random() < 0.3:
            conn.execute(text("INSERT INTO lead_deadline (lead_id, name, due_at) VALUES (:id, 'sign', :t)"),
                         {"id": lead_id, "t": received + timedelta(seconds=120)})
        for k in range(rng.choice((0, 0, 1, 1, 2, 3, 5))):
            res = rng.choices(["connected", "no_answer", "rejected", "busy", "powered_off"], [6, 2, 1, 0.5, 0.5])[0]
            conn.execute(text("INSERT INTO call_attempt (lead_id, at, actor, result) VALUES (:id, :t, 'op', :r)"),
                         {"id": lead_id, "t": received + timedelta(seconds=60 * (k + 1) + rng.randint(0, 50)),
                          "r": res})
        for k in range(rng.choice((0, 1, 1, 2))):
            conn.execute(text(
                "INSERT INTO sms_message (lead_id, purpose, to_phone, body, idempotency_key, status, attempts) "
                "VALUES (:id, 'warning', '13900000000', 'x', :key, :s, 1)"),
                {"id": lead_id, "key": f"{lead_id}-{k}", "s": rng.choice(["sent", "delivered", "failed", "pending"])})
        if rng.random() < 0.4:
            status = rng.choice(["done", "done", "failed", "assigned", "waiting"])
            met = rng.random() < 0.8 if status == "done" else None
            team = f"T{beat}" if beat and f"T{beat}" in teams else rng.choice(teams)
            vid = conn.execute(text(
                "INSERT INTO visit (lead_id, reason, requested_by, status, team_code, met_in_person) "
                "VALUES (:id, 'policy', 'worker', :s, :team, :met) RETURNING id"),
                {"id": lead_id, "s": status, "team": team, "met": met}).scalar()
            if status != "waiting":
                arrived = received + timedelta(seconds=rng.randint(300, 4000)) if status != "assigned" else None
                conn.execute(text(
                    "INSERT INTO assignment (visit_id, lead_id, team_code, attempt, status, offered_at, expires_at, "
                    "arrived_at) VALUES (:v, :id, :team, 1, :s, :t, :t, :a)"),
                    {"v": vid, "id": lead_id, "team": team, "t": received, "a": arrived,
                     "s": "completed" if arrived else "accepted"})
        if rng.random() < 0.5:
            outcome = rng.choice(["dissuaded", "dissuaded", "dissuaded", "refused", "not_reached", "false_alarm",
                                  "duplicate", "already_defrauded"])
            conn.execute(text("UPDATE lead SET status = 'closed', outcome = :o, closed_at = :t, loss_cny = :loss "
                              "WHERE id = :id AND status = 'tiered'"),
                         {"o": outcome, "t": received + timedelta(hours=2), "id": lead_id,
                          "loss": 100 if outcome == "already_defrauded" else None})
            if rng.random() < 0.7:
                due = now + timedelta(days=rng.choice((-3, -1, 2)))
                done = due if rng.random() < 0.6 else None
                conn.execute(text("INSERT INTO callback (lead_id, due_at, done_at, result) VALUES (:id, :d, :x, :r)"),
                             {"id": lead_id, "d": due, "x": done, "r": "safe" if done else None})


def _expected(conn, key_sql: str) -> dict:
    """Per lead, each fact by its own correlated subquery; then counted per key in Python."""
    rows = conn.execute(text(f"""
        SELECT {key_sql} AS key, l.id, l.phone, l.id_number, l.person_id, l.merged_into, l.warning_type, l.status,
               l.outcome,
               l.received_at, l.signed_at,
               l.signed_at <= coalesce((SELECT due_at FROM lead_deadline d WHERE d.lead_id = l.id AND d.name = 'sign'),
                                       (l.tier_detail #>> '{{deadlines,sign}}')::timestamptz) AS in_time,
               (SELECT count(*) FROM call_attempt c WHERE c.lead_id = l.id) AS calls,
               EXISTS (SELECT 1 FROM call_attempt c WHERE c.lead_id = l.id AND c.result = 'connected') AS conn,
               (SELECT min(at) FROM call_attempt c WHERE c.lead_id = l.id) AS first_call,
               (SELECT count(*) FROM sms_message s WHERE s.lead_id = l.id AND s.purpose = 'warning'
                   AND s.status IN ('sent', 'delivered')) AS sms,
               EXISTS (SELECT 1 FROM visit v WHERE v.lead_id = l.id) AS visit,
               EXISTS (SELECT 1 FROM visit v WHERE v.lead_id = l.id AND v.status = 'done' AND v.met_in_person)
                   AS visit_done,
               (SELECT min(arrived_at) FROM assignment a WHERE a.lead_id = l.id) AS on_scene,
               (SELECT count(*) FROM assignment a WHERE a.lead_id = l.id AND a.arrived_at IS NOT NULL) AS arrivals,
               (SELECT count(*) FROM callback b WHERE b.lead_id = l.id AND b.attempt = 1
                   AND (b.due_at <= now() OR b.done_at IS NOT NULL)) AS cb_due,
               (SELECT count(*) FROM callback b WHERE b.lead_id = l.id AND b.result IN ('safe', 'defrauded'))
                   AS cb_done,
               (SELECT count(*) FROM case_report k JOIN lead x ON x.id = k.post_warning_lead_id
                WHERE coalesce(x.merged_into, x.id) = l.id) AS cases
        FROM lead l WHERE l.received_at >= :f AND l.received_at < :t"""),
        {"f": RANGE["from"], "t": RANGE["to"]}).all()
    groups: dict = defaultdict(list)
    for r in rows:
        groups[r.key].append(r)
        groups["__total__"].append(r)
    out = {}
    for key, every in groups.items():
        rs = [r for r in every if r.merged_into is None]  # the work counted once: merged leads apart

        def who(r):
            return f"p{r.person_id}" if r.person_id is not None else (
                r.phone or (f"id:{r.id_number.upper()}" if r.id_number else f"lead:{r.id}"))
        person = [who(r) for r in rs]

        def q(values, p):
            values = [v for v in values if v is not None]
            return float(np.percentile(values, p)) if values else None

        closed = [r for r in rs if r.status == "closed" and r.outcome not in ("duplicate", "false_alarm")]
        counts = {
            "leads": len(rs), "merged": len(every) - len(rs), "people": len(set(person)),
            "signed": sum(r.signed_at is not None for r in rs), "signed_in_time": sum(bool(r.in_time) for r in rs),
            "calls": sum(r.calls > 0 for r in rs), "connected": sum(r.conn for r in rs),
            "call_attempts": sum(r.calls for r in rs), "sms_sent": sum(r.sms for r in rs),
            "visits_required": sum(r.visit for r in rs), "visits_done": sum(r.visit_done for r in rs),
            "fund_visits_required": sum(r.visit for r in rs if r.warning_type == "fund_transfer"),
            "fund_visits_done": sum(r.visit_done for r in rs if r.warning_type == "fund_transfer"),
            "closed_counted": len(closed), "dissuaded": sum(r.outcome == "dissuaded" for r in closed),
            "callbacks_due": sum(r.cb_due for r in rs), "callbacks_done": sum(r.cb_done for r in rs),
            "post_warning_cases": sum(r.cases for r in rs),
            "post_warning_people": len({who(r) for r in rs if r.cases}),
            "attempts": sum(r.calls + r.sms + r.arrivals for r in rs),
        }
        for name, col in (("sign_seconds", "signed_at"), ("first_call_seconds", "first_call"),
                          ("on_scene_seconds", "on_scene")):
            secs = [(getattr(r, col) - r.received_at).total_seconds() if getattr(r, col) else None for r in rs]
            counts[f"{name}_median"], counts[f"{name}_p90"] = q(secs, 50), q(secs, 90)
        out[key] = counts
    return out


KEYS = {"street": "l.street_code", "beat": "l.beat_code", "tier": "l.tier", "fraud_type": "l.fraud_type",
        "source": "l.source", "day": "to_char(l.received_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')",
        "team": "coalesce(l.assigned_team, (SELECT a.team_code FROM assignment a WHERE a.lead_id = l.id "
                "AND a.status IN ('accepted', 'arrived', 'completed') ORDER BY a.id DESC LIMIT 1))"}


def _same(got: dict, want: dict, where: str) -> None:
    for k, v in want.items():
        g = got[k]
        if isinstance(v, float) or isinstance(g, float):
            assert g == pytest.approx(v, rel=1e-9, abs=1e-6), f"{where}: {k}"
        else:
            assert g == v, f"{where}: {k}"
    for name, (num, den) in kpi.RATES.items():  # rates: from the counts, null for an empty denominator
        assert got[name] == (None if not want[den] else pytest.approx(want[num] / want[den])), f"{where}: {name}"


@pytest.fixture(scope="module")
async def worked(client, source_headers, run_worker, sync_engine, redis_url, district):
    """900 leads worked, their outcomes and 13 cases — built once: the tests here only read them."""
    wipe(sync_engine, redis_url)
    leads = _leads(900)
    r = await client.post("/api/v1/leads/batch", json={"leads": leads}, headers=source_headers)
    assert r.status_code == 200
    await run_worker()
    with sync_engine.begin() as conn:
        _outcome_rows(conn)
    # a few cases of people warned (by phone and by ID number) and one of nobody
    with sync_engine.connect() as conn:
        people = conn.execute(text("SELECT phone, id_number, pushed_at FROM lead WHERE phone IS NOT NULL "
                                   "AND id_number IS NOT NULL ORDER BY id LIMIT 12")).all()
    cases = [{"case_id": f"K{i}", "reported_at": (p.pushed_at + timedelta(days=2)).isoformat(),
              "victim": {"phone": p.phone} if i % 2 else {"id_number": p.id_number.lower()},
              "fraud_type": "other", "loss_cny": 1000 + i}
             for i, p in enumerate(people)]
    cases.append({"case_id": "K-nobody", "reported_at": "2026-10-10T10:00:00+08:00",
                  "victim": {"phone": "13000000001"}, "loss_cny": 5})
    r = await client.post("/api/v1/cases/batch", json={"cases": cases + [{"case_id": "bad"}]}, headers=source_headers)
    assert sum(x["post_warning_of"] is not None for x in r.json()["results"][:-1]) == 12
    return leads


async def test_stats_equal_the_raw_rows_for_every_group_by(client, commander, worked, sync_engine):
    with sync_engine.connect() as conn:
        for group in GROUPS:
            r = await client.get("/api/v1/stats", params={"group_by": group, **RANGE}, headers=commander)
            assert r.status_code == 200, r.text
            body = r.json()
            want = _expected(conn, KEYS[group])
            got = {row["key"]: row for row in body["rows"]}
            total = want.pop("__total__")
            assert set(got) == set(want)
            for key, counts in want.items():
                _same(got[key], counts, f"{group}={key}")
            _same(body["total"], total, f"{group} total")
            assert body["total"]["post_warning_cases"] == 12
    # rejections counted by source and reason (one bad case of this test, rejected just now)
    body = (await client.get("/api/v1/stats", headers=commander)).json()
    assert body["rejections"]["by_source"].get("case") == 1
    assert body["rejections"]["by_reason"]["reported_at"] >= 1


async def test_empty_range_has_null_rates_not_zero(client, commander, worked):
    r = await client.get("/api/v1/stats", params={"group_by": "tier", "from": "2020-01-01T00:00:00+08:00",
                                                  "to": "2020-01-02T00:00:00+08:00"}, headers=commander)
    body = r.json()
    assert body["rows"] == [] and body["total"]["leads"] == 0
    assert all(body["total"][name] is None for name in kpi.RATES)
    bad = await client.get("/api/v1/stats", params={"group_by": "planet"}, headers=commander)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "group_by"
    swapped = await client.get("/api/v1/stats", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=commander)
    assert swapped.status_code == 422 and swapped.json()["detail"][0]["field"] == "from"


async def test_ranking_worst_first_with_supervision(client, commander, worked, make_user):
    r = await client.get("/api/v1/stats/ranking", params={"month": "2026-10"}, headers=commander)
    assert r.status_code == 200, r.text
    rows = r.json()["rows"]
    month = {x["key"]: x for x in (await client.get("/api/v1/stats", params={
        "group_by": "street", "from": "2026-10-01T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00"},
        headers=commander)).json()["rows"]}
    scores = [x["score"] for x in rows if x["score"] is not None]
    assert scores == sorted(scores) and len(scores) == len(month) - (None in month)
    for x in rows:
        if x["key"] in month:
            assert x["score"] == pytest.approx(kpi.score(month[x["key"]]))
    assert sum(x["supervision"] for x in rows) == 3
    assert [x["rank"] for x in rows] == list(range(1, len(rows) + 1))
    assert (await client.get("/api/v1/stats/ranking", params={"month": "2026-13"}, headers=commander)).status_code \
        == 422
    squad = make_user("police", INSIDE["team"])
    assert (await client.get("/api/v1/stats", headers=squad)).status_code == 403


async def test_person_history_lists_everything_and_is_audited(client, commander, worked, sync_engine):
    with sync_engine.connect() as conn:
        phone, n = conn.execute(text("SELECT phone, count(*) FROM lead WHERE phone IS NOT NULL GROUP BY phone "
                                     "ORDER BY count(*) DESC, phone LIMIT 1")).one()
        calls = conn.execute(text("SELECT count(*) FROM call_attempt c JOIN lead l ON l.id = c.lead_id "
                                  "WHERE l.phone = :p"), {"p": phone}).scalar()
        before = conn.execute(text("SELECT count(*) FROM access_log WHERE what = 'person.history'")).scalar()
    r = await client.post("/api/v1/people/history", json={"phone": f"+86 {phone}"}, headers=commander)
    assert r.status_code == 200, r.text
    h = r.json()
    assert len(h["leads"]) == n >= 2 and h["totals"]["calls"] == len(h["calls"]) == calls
    assert {x["lead_id"] for x in h["calls"]} <= {x["id"] for x in h["leads"]}
    with sync_engine.connect() as conn:
        after = conn.execute(text("SELECT count(*) FROM access_log WHERE what = 'person.history'")).scalar()
    assert after - before == n
    bad = await client.post("/api/v1/people/history", json={"phone": "12", "id_number": None}, headers=commander)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "phone"
    both = await client.post("/api/v1/people/history", json={}, headers=commander)
    assert both.status_code == 422


async def test_monthly_report_numbers_equal_stats(client, commander, worked):
    r = await client.get("/api/v1/reports/monthly", params={"month": "2026-10"}, headers=commander)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.openxmlformats")
    wb = load_workbook(io.BytesIO(r.content))
    assert wb.sheetnames == ["汇总 Summary", "街道排名 Streets", "警务区 Beats", "劝阻小组 Squads", "预警后发案 Cases",
                             "倒查 Reviews"]
    rng = {"from": "2026-10-01T00:00:00+08:00", "to": "2026-11-01T00:00:00+08:00"}
    from dispatch.outcomes.report import COLUMNS
    fields = [f for _, f in COLUMNS]
    summary = {row[0]: row[1] for row in wb["汇总 Summary"].iter_rows(min_row=3, values_only=True)}
    total = (await client.get("/api/v1/stats", params={"group_by": "beat", **rng}, headers=commander)).json()
    for title, f in COLUMNS:
        assert summary[title] == (pytest.approx(total["total"][f]) if total["total"][f] is not None else None), f
    for sheet, group in (("警务区 Beats", "beat"), ("劝阻小组 Squads", "team")):
        stats = {x["key"]: x for x in (await client.get("/api/v1/stats", params={"group_by": group, **rng},
                                                         headers=commander)).json()["rows"]}
        rows = list(wb[sheet].iter_rows(min_row=2, values_only=True))
        assert len(rows) == len(stats)
        for row in rows:
            s = stats[row[0]]
            assert list(row[1:]) == [pytest.approx(s[f]) if s[f] is not None else None for f in fields]
    streets = list(wb["街道排名 Streets"].iter_rows(min_row=2, values_only=True))
    ranking = (await client.get("/api/v1/stats/ranking", params={"month": "2026-10"}, headers=commander)).json()
    assert [row[1] for row in streets] == [x["key"] for x in ranking["rows"]]
    assert wb["街道排名 Streets"]._charts, "the ranking sheet has its bar chart"
    cases = list(wb["预警后发案 Cases"].iter_rows(min_row=2, values_only=True))
    assert len(cases) == total["total"]["post_warning_cases"]
    for c in cases:  # masked
        assert c[2] is None or "****" in c[2]
        assert c[3] is None or "**********" in c[3]


@pytest.mark.parametrize("params, field", [
    ({"to": "0001-01-02T00:00:00+00:00"}, "to"), ({"from": "not-a-time"}, "from"), ({"group_by": ""}, "group_by"),
    ({"from": "0001-01-01T00:00:00+08:00"}, "from"), ({"to": "9999-12-31T23:00:00-08:00"}, "to")])
async def test_stats_bad_input_is_a_422_naming_the_field(client, commander, params, field):
    r = await client.get("/api/v1/stats", params=params, headers=commander)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == field
