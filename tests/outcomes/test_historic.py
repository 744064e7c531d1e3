"""`quanzu import-leads FILE --historic`: old leads are validated, stored `historic`, placed and
tiered for the records — and start nothing: no deadline, SMS, call queue, visit, push, job or
feedback. A rerun skips what is stored. The monthly Excel export loads the same way."""
from __future__ import annotations

from datetime import datetime

import orjson
import pytest
from openpyxl import Workbook
from redis import Redis
from sqlalchemy import text

from dispatch.outcomes import feedback
from service.core.db import sync_session
from service.core.redis import key
from tests.data import shared_file
from tests.service.test_cli import quanzu
from workers import tasks

N = 2000


def _count(conn, sql: str) -> int:
    return conn.execute(text(sql)).scalar()


def _nothing_started(sync_engine, redis_url) -> None:
    with sync_engine.connect() as conn:
        for table in ("sms_message", "lead_deadline", "visit", "assignment", "callback", "call_attempt", "dial",
                      "alarm", "feedback_delivery"):
            assert _count(conn, f"SELECT count(*) FROM {table}") == 0, table
        assert _count(conn, "SELECT count(*) FROM lead WHERE needs_call OR NOT historic") == 0
    redis = Redis.from_url(redis_url)
    assert [k for k in redis.scan_iter(key("ws:*"))] == []  # no board or socket push
    assert [k for k in redis.scan_iter("rq:queue:*") if redis.llen(k)] == []  # no job


@pytest.mark.usefixtures("district", "clean")
def test_historic_import_places_and_tiers_and_starts_nothing(tmp_path, sync_engine, redis_url, settings):
    with sync_engine.begin() as conn:
        conn.execute(text("TRUNCATE feedback_source, feedback_delivery"))
    with sync_session(sync_engine) as session:  # a source that asked for feedback hears nothing of history
        feedback.register(session, "national_platform", "http://127.0.0.1:9/feedback", None)
        session.commit()
    lines = shared_file("leads.jsonl").read_text(encoding="utf-8").splitlines()[:N]
    file = tmp_path / "leads.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = quanzu("import-leads", str(file), "--historic")
    stored = int(out.stderr.split(" stored")[0].split()[-1])
    skipped = int(out.stderr.split(" skipped")[0].split()[-1])  # the feed pushes some leads twice
    rejected = int(out.stderr.split(" rejected")[0].split()[-1])
    assert stored + skipped + rejected == N and stored > N * 0.9
    with sync_engine.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM lead WHERE historic") == stored
        assert _count(conn, "SELECT count(*) FROM lead WHERE tier IS NULL OR placed_by IS NULL") == 0
        statuses = dict(conn.execute(text("SELECT status, count(*) FROM lead GROUP BY status")).all())
        assert set(statuses) <= {"closed", "transferred"} and statuses.get("closed", 0) > 0
        # received when pushed (the KPIs count a lead in the month it came), not today
        assert _count(conn, "SELECT count(*) FROM lead WHERE received_at <> pushed_at") == 0
        assert _count(conn, "SELECT count(*) FROM lead_event WHERE kind = 'tiered'") == statuses.get("closed", 0)
    _nothing_started(sync_engine, redis_url)
    assert tasks.reconcile(0) == 0  # nothing for the workers either

    again = quanzu("import-leads", str(file), "--historic")
    assert f"0 stored, {stored + skipped} skipped (stored already), {rejected} rejected" in again.stderr
    with sync_engine.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM lead") == stored
    _nothing_started(sync_engine, redis_url)


@pytest.mark.usefixtures("district", "clean")
def test_the_monthly_excel_export_loads_with_chinese_headers(tmp_path, sync_engine, redis_url, settings):
    first = orjson.loads(shared_file("leads.jsonl").read_text(encoding="utf-8").splitlines()[1])
    wb = Workbook()
    ws = wb.active
    ws.append(["来源", "线索编号", "推送时间", "预警类型", "诈骗类型", "风险等级", "手机号", "姓名", "身份证号", "户籍",
               "经度", "纬度", "坐标系", "定位方式", "处置结果", "结案时间"])
    loc = first["location"]
    ws.append([first["source"], "XL-1", datetime(2025, 10, 3, 9, 30), first["warning_type"], first["fraud_type"],
               first["risk_level"], int(first["subject"]["phone"]), "历史人", first["subject"]["id_number"],
               "resident", loc["lon"], loc["lat"], loc["crs"], loc["kind"], "dissuaded", "2025-10-03T11:00:00"])
    ws.append(["national_platform", "XL-2", "2025-10-04 10:00:00", "fraud_call", "fake_investment", 9,
               "13900000000"])  # risk level 9: refused, naming the field
    file = tmp_path / "export.xlsx"
    wb.save(file)
    out = quanzu("import-leads", str(file), "--historic", check=False)
    assert out.returncode == 0 and "1 stored, 0 skipped" in out.stderr and "1 rejected" in out.stderr
    assert "line 3:" in out.stderr and "risk_level" in out.stderr
    with sync_engine.connect() as conn:
        row = conn.execute(text("SELECT * FROM lead WHERE source_id = 'XL-1'")).one()
    assert row.historic and row.phone == first["subject"]["phone"] and row.name == "历史人"
    assert row.pushed_at.isoformat() == "2025-10-03T01:30:00+00:00"  # the center's time, +08:00
    assert row.tier is not None and row.status == "closed" and row.outcome == "dissuaded"
    assert row.closed_at.isoformat() == "2025-10-03T03:00:00+00:00"
    _nothing_started(sync_engine, redis_url)


@pytest.mark.usefixtures("district", "clean")
def test_a_historic_lead_left_received_is_never_worked(sync_engine, settings):
    """Were an import to stop between storing and tiering, no worker would start a ladder on it."""
    with sync_engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO lead (source, source_id, pushed_at, received_at, warning_type, fraud_type, risk_level, "
            "phone, ongoing, residency, historic) VALUES ('national_platform', 'H-1', now() - interval '1 day', "
            "now() - interval '1 day', 'fraud_call', 'other', 1, '13900000001', false, 'resident', true)"))
        lead_id = conn.execute(text("SELECT id FROM lead WHERE source_id = 'H-1'")).scalar()
    assert tasks.reconcile(0) == 0
    assert tasks.process_leads([lead_id])["done"] == 0


@pytest.mark.usefixtures("district", "clean")
async def test_without_historic_the_leads_are_worked_as_pushed_ones(tmp_path, sync_engine, run_worker, settings):
    lines = shared_file("leads.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    file = tmp_path / "live.jsonl"
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = quanzu("import-leads", str(file))
    stored = int(out.stderr.split(" stored")[0].split()[-1])
    with sync_engine.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM lead WHERE status = 'received' AND NOT historic") == stored > 0
    await run_worker()  # the job the command enqueued
    with sync_engine.connect() as conn:
        assert _count(conn, "SELECT count(*) FROM lead WHERE status = 'received'") == 0
        assert _count(conn, "SELECT count(*) FROM lead_deadline") > 0  # their ladders started
