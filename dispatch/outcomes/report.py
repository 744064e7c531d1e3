"""月通报: the monthly report as an .xlsx workbook (openpyxl). The same counts and formulas as
/stats (dispatch.outcomes.stats, dispatch.outcomes.kpi); phones and ID numbers masked."""
from __future__ import annotations

import io
from datetime import datetime

from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.styles import Font
from sqlalchemy import text

from dispatch.outcomes import kpi, reviews, stats
from dispatch.outcomes.cases import case_public

# (column title, row field) of the KPI sheets, in order
COLUMNS: list[tuple[str, str]] = [
    ("线索 leads", "leads"), ("并入 merged", "merged"), ("人数 people", "people"), ("及时签收 signed in time", "signed_in_time"),
    ("签收及时率 sign-off rate", "sign_in_time_rate"), ("拨打 calls", "calls"), ("拨通 connected", "connected"),
    ("电话拨通率 connection rate", "connection_rate"), ("需见面 visits required", "visits_required"),
    ("已见面 visits done", "visits_done"), ("见面劝阻率 face-to-face rate", "face_to_face_rate"),
    ("资金预警见面率 fund face-to-face rate", "fund_face_to_face_rate"), ("结案 closed", "closed_counted"),
    ("劝阻成功 dissuaded", "dissuaded"), ("劝阻成功率 dissuasion rate", "dissuasion_rate"),
    ("应回访 callbacks due", "callbacks_due"), ("已回访 callbacks done", "callbacks_done"),
    ("回访率 callback rate", "callback_rate"), ("预警后发案 post-warning cases", "post_warning_cases"),
    ("预警后发案人数 post-warning people", "post_warning_people"),
    ("预警后发案率 post-warning rate", "post_warning_rate"), ("劝阻次数 attempts", "attempts"),
    ("人均次数 attempts per person", "attempts_per_person"),
    ("签收中位 sign median s", "sign_seconds_median"), ("签收P90 sign p90 s", "sign_seconds_p90"),
    ("首呼中位 first call median s", "first_call_seconds_median"),
    ("到场中位 on scene median s", "on_scene_seconds_median"), ("到场P90 on scene p90 s", "on_scene_seconds_p90"),
]
RATE_FIELDS = frozenset(kpi.RATES) - {"attempts_per_lead", "attempts_per_person"}

_CASES = text("""
SELECT c.*, l.id AS lead_id, l.source, l.source_id, l.street_code AS lead_street FROM case_report c
JOIN lead l ON l.id = c.post_warning_lead_id
WHERE l.received_at >= :since AND l.received_at < :until
  AND (CAST(:district AS text) IS NULL OR l.district_code = CAST(:district AS text))
ORDER BY c.reported_at, c.id""")


async def build_monthly(session, month: str, now: datetime, district: str | None = None) -> dict:
    """The month of one district (`district`) or of the whole city (None)."""
    start, end = kpi.month_bounds(month)
    since, until = stats.local_start(start), stats.local_start(end)
    beats, total = await stats.kpi_rows(session, stats.GroupBy.beat, since, until, now, district)
    teams, _ = await stats.kpi_rows(session, stats.GroupBy.team, since, until, now, district)
    ranking = await stats.ranking(session, month, now, district)
    cases = []
    for r in (await session.execute(_CASES, {"since": since, "until": until, "district": district})).all():
        cases.append({**case_public(r, masked=True), "street_code": r.lead_street})
    return {"month": month, "quarter": ranking["quarter"], "total": total, "ranking": ranking["rows"],
            "beats": beats, "teams": teams, "cases": cases, "reviews": await reviews.list_reviews(session, since, until),
            "rejections": await stats.rejection_counts(session, since, until)}


def _kpi_sheet(ws, title: str, rows: list[dict], first: list[tuple[str, str]]) -> None:
    ws.append([t for t, _ in first] + [t for t, _ in COLUMNS])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for r in rows:
        ws.append([r.get(f) for _, f in first] + [r.get(f) for _, f in COLUMNS])
    for col, (_, f) in enumerate(first + COLUMNS, 1):
        if f in RATE_FIELDS:
            for (cell,) in ws.iter_rows(min_row=2, min_col=col, max_col=col):
                cell.number_format = "0.0%"
    ws.freeze_panes = "B2"
    ws.title = title


def to_xlsx(data: dict) -> bytes:
    wb = Workbook()
    summary = wb.active
    summary.title = "汇总 Summary"
    summary.append([f"月通报 {data['month']}", ""])
    summary["A1"].font = Font(bold=True, size=14)
    summary.append(["指标 KPI", "值 value"])
    for title, f in COLUMNS:
        summary.append([title, data["total"].get(f)])
        if f in RATE_FIELDS:
            summary.cell(summary.max_row, 2).number_format = "0.0%"
    summary.append(["拒收 rejected pushes", data["rejections"]["total"]])
    for source, n in sorted(data["rejections"]["by_source"].items()):
        summary.append([f"拒收 rejected: {source}", n])
    summary.column_dimensions["A"].width = 40

    ranking = wb.create_sheet()
    _kpi_sheet(ranking, "街道排名 Streets", data["ranking"],
               [("排名 rank (worst first)", "rank"), ("街道 street", "key"), ("名称 name", "name"),
                ("得分 score", "score"), ("挂牌督办 supervision", "supervision"),
                (f"季度得分 {data['quarter']} score", "quarter_score")])
    if data["ranking"]:
        chart = BarChart()
        chart.type = "bar"
        chart.title = "街道得分 street score (worst first)"
        n = len(data["ranking"]) + 1
        chart.add_data(Reference(ranking, min_col=4, min_row=1, max_row=n), titles_from_data=True)
        chart.set_categories(Reference(ranking, min_col=3, min_row=2, max_row=n))
        chart.height, chart.width = 10, 20
        ranking.add_chart(chart, "A" + str(n + 3))

    _kpi_sheet(wb.create_sheet(), "警务区 Beats", data["beats"], [("警务区 beat", "key")])
    _kpi_sheet(wb.create_sheet(), "劝阻小组 Squads", data["teams"], [("小组 squad", "key")])

    cases = wb.create_sheet("预警后发案 Cases")
    cases.append(["案件 case_id", "报案时间 reported_at", "电话 phone", "身份证 id_number", "诈骗类型 fraud_type",
                  "损失 loss_cny", "警务区 beat", "街道 street", "预警线索 lead id", "来源 source", "来源编号 source_id"])
    for cell in cases[1]:
        cell.font = Font(bold=True)
    for c in data["cases"]:
        w = c["post_warning_of"]
        cases.append([c["case_id"], c["reported_at"], c["victim"]["phone"], c["victim"]["id_number"],
                      c["fraud_type"], c["loss_cny"], c["beat_code"], c["street_code"], w["id"], w["source"],
                      w["source_id"]])
    reviews.month_sheet(wb.create_sheet("倒查 Reviews"), data.get("reviews", []))
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
