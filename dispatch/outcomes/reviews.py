"""倒查: the review of a case filed after a warning.

The review's row (`case_review`) is written when the case is matched to a warning (cases.py, in the
matching statement); its content is read from the leads' own rows, so it always says what the
records say: every action on every lead of that person with its time and actor (the timeline),
the calls, SMS, visits and squads, callbacks, the family and stop-payment; each deadline met, late
or missed; and who was told. The person's leads: those with the matched lead's `person_id` when it
has one, else those with the victim's phone or ID number. Phones and ID numbers are masked.

`verdict` of a deadline: met (done by its due time), late (done after it), missed (the sweep found
it due and undone), cancelled (the lead closed or moved on first), pending (not due yet)."""
from __future__ import annotations

import io
from datetime import datetime

from openpyxl import Workbook
from openpyxl.styles import Font
from sqlalchemy import text

from dispatch.identity import mask_id, mask_phone
from service.core.clock import iso
from service.core.money import cny

_REVIEW = text("""
SELECT c.id, c.case_id, c.reported_at, c.victim_phone, c.victim_id_number, c.fraud_type, c.loss_cny, c.beat_code,
       r.generated_at, r.matched_at, r.lead_id, l.person_id
FROM case_review r JOIN case_report c ON c.id = r.case_report_id LEFT JOIN lead l ON l.id = r.lead_id
WHERE c.case_id = :case_id""")

_LEADS = """SELECT id, source, source_id, pushed_at, received_at, warning_type, fraud_type, risk_level, phone,
       id_number, status, tier, beat_code, street_code, assigned_team, signed_at, signed_by, outcome, closed_at,
       merged_into, historic FROM lead WHERE {where} ORDER BY pushed_at, id"""
_BY_PERSON = "person_id = :person OR id = :lead"
_BY_VICTIM = ("id = :lead OR (CAST(:phone AS text) IS NOT NULL AND phone = :phone) OR "
              "(CAST(:idn AS text) IS NOT NULL AND id_number IN (:idn, lower(:idn)))")

_PARTS = {
    "actions": "SELECT lead_id, at, actor, kind, data FROM lead_event WHERE lead_id = ANY(:ids) ORDER BY at, id",
    "calls": "SELECT lead_id, at, actor, result, outcome, channel, note FROM call_attempt WHERE lead_id = ANY(:ids) "
             "ORDER BY at, id",
    "sms": "SELECT lead_id, purpose, to_phone, status, created_at, sent_at, receipt_at FROM sms_message "
           "WHERE lead_id = ANY(:ids) ORDER BY created_at, id",
    "visits": "SELECT id, lead_id, reason, requested_by, requested_at, due_at, status, team_code, done_at, "
              "met_in_person, outcome FROM visit WHERE lead_id = ANY(:ids) ORDER BY requested_at, id",
    "squads": "SELECT lead_id, visit_id, team_code, attempt, status, offered_at, accepted_by, accepted_at, "
              "arrived_at, completed_at, declined_reason FROM assignment WHERE lead_id = ANY(:ids) "
              "ORDER BY offered_at, id",
    "callbacks": "SELECT lead_id, due_at, done_at, actor, result, note FROM callback WHERE lead_id = ANY(:ids) "
                 "ORDER BY due_at, id",
    "family": "SELECT lead_id, name, relation, phone, added_by, created_at FROM family_contact "
              "WHERE lead_id = ANY(:ids) ORDER BY created_at, id",
    "stop_payment": "SELECT lead_id, seq, bank, requested_by, requested_at, answer_due_at, status, answered_at, "
                    "answered_by, saved_cny FROM stop_payment_request WHERE lead_id = ANY(:ids) "
                    "ORDER BY requested_at, id",
    "deadlines": "SELECT lead_id, name, due_at, state, met_at, acted_at FROM lead_deadline WHERE lead_id = ANY(:ids) "
                 "ORDER BY due_at, id",
}
_MASK = {"phone": mask_phone, "to_phone": mask_phone, "id_number": mask_id}


def _plain(row) -> dict:
    out = {}
    for k, v in row._mapping.items():
        if isinstance(v, datetime):
            v = iso(v)
        elif hasattr(v, "as_tuple"):
            v = cny(v)
        elif k in _MASK:
            v = _MASK[k](v)
        out[k] = v
    return out


def verdict(d: dict) -> str:
    """A deadline row (times as ISO strings of one zone, or datetimes) → met | late | missed | cancelled | pending."""
    if d["met_at"] is not None:
        return "met" if _t(d["met_at"]) <= _t(d["due_at"]) else "late"
    if d["state"] == "missed" or d["acted_at"] is not None:
        return "missed"
    return "cancelled" if d["state"] == "cancelled" else "pending"


def _t(v) -> datetime:
    return v if isinstance(v, datetime) else datetime.fromisoformat(v)


async def review(session, case_id: str) -> dict | None:
    """The review of one case (None: no such case, or it matched no warning)."""
    head = (await session.execute(_REVIEW, {"case_id": case_id})).first()
    if head is None:
        return None
    if head.person_id is not None:
        sql, params = _LEADS.format(where=_BY_PERSON), {"person": head.person_id, "lead": head.lead_id}
    else:
        sql, params = _LEADS.format(where=_BY_VICTIM), {"lead": head.lead_id, "phone": head.victim_phone,
                                                         "idn": head.victim_id_number}
    leads = [_plain(r) for r in (await session.execute(text(sql), params)).all()]
    ids = [lead["id"] for lead in leads]
    parts = {}
    for name, q in _PARTS.items():
        parts[name] = [_plain(r) for r in (await session.execute(text(q), {"ids": ids})).all()] if ids else []
    for d in parts["deadlines"]:
        d["verdict"] = verdict(d)
    told = ([{"kind": "sms", "lead_id": s["lead_id"], "purpose": s["purpose"], "phone": s["to_phone"],
              "status": s["status"], "at": s["sent_at"] or s["created_at"]} for s in parts["sms"]]
            + [{"kind": "family", "lead_id": f["lead_id"], "name": f["name"], "relation": f["relation"],
                "phone": f["phone"], "at": f["created_at"]} for f in parts["family"]]
            + [{"kind": "squad", "lead_id": a["lead_id"], "team_code": a["team_code"], "status": a["status"],
                "at": a["offered_at"]} for a in parts["squads"]])
    verdicts = [d["verdict"] for d in parts["deadlines"]]
    return {
        "case": {"case_id": head.case_id, "reported_at": iso(head.reported_at),
                 "victim": {"phone": mask_phone(head.victim_phone), "id_number": mask_id(head.victim_id_number)},
                 "fraud_type": head.fraud_type, "loss_cny": cny(head.loss_cny), "beat_code": head.beat_code},
        "generated_at": iso(head.generated_at), "matched_at": iso(head.matched_at), "lead_id": head.lead_id,
        "person_id": head.person_id, "leads": leads, **parts, "told": told,
        "totals": {"warnings": len(leads), "actions": len(parts["actions"]), "calls": len(parts["calls"]),
                   "connected": sum(c["result"] == "connected" for c in parts["calls"]), "sms": len(parts["sms"]),
                   "visits": len(parts["visits"]), "deadlines": len(verdicts),
                   "deadlines_met": verdicts.count("met"), "deadlines_late": verdicts.count("late"),
                   "deadlines_missed": verdicts.count("missed"), "told": len(told)},
    }


_LIST = text("""
SELECT c.case_id, c.reported_at, c.fraud_type, c.loss_cny, c.beat_code, c.victim_phone, c.victim_id_number,
       r.generated_at, r.lead_id, l.source, l.source_id, l.street_code, l.tier,
       (SELECT count(*) FROM lead_deadline d WHERE d.lead_id = r.lead_id
          AND (d.state = 'missed' OR d.acted_at IS NOT NULL OR d.met_at > d.due_at)) AS deadlines_missed
FROM case_review r JOIN case_report c ON c.id = r.case_report_id LEFT JOIN lead l ON l.id = r.lead_id
WHERE c.reported_at >= :since AND c.reported_at < :until
ORDER BY c.reported_at, c.id LIMIT :limit""")


async def list_reviews(session, since: datetime, until: datetime, limit: int = 1000) -> list[dict]:
    """Reviews of the cases reported in [since, until): one line each, with the matched lead's
    deadlines missed or met late."""
    return [{"case_id": r.case_id, "reported_at": iso(r.reported_at), "generated_at": iso(r.generated_at),
             "fraud_type": r.fraud_type, "loss_cny": cny(r.loss_cny), "beat_code": r.beat_code,
             "victim": {"phone": mask_phone(r.victim_phone), "id_number": mask_id(r.victim_id_number)},
             "lead": None if r.lead_id is None else {"id": r.lead_id, "source": r.source, "source_id": r.source_id},
             "street_code": r.street_code, "tier": r.tier, "deadlines_missed": r.deadlines_missed}
            for r in (await session.execute(_LIST, {"since": since, "until": until, "limit": limit})).all()]


# ---------------------------------------------------------------- the workbook
SHEETS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("预警 Warnings", "leads", [("线索 lead", "id"), ("来源 source", "source"), ("来源编号 source id", "source_id"),
                              ("推送 pushed", "pushed_at"), ("诈骗类型 fraud type", "fraud_type"),
                              ("等级 tier", "tier"), ("状态 status", "status"), ("签收 signed", "signed_at"),
                              ("签收人 by", "signed_by"), ("结果 outcome", "outcome"), ("结案 closed", "closed_at")]),
    ("处置过程 Actions", "actions", [("时间 time", "at"), ("线索 lead", "lead_id"), ("操作人 actor", "actor"),
                                  ("动作 action", "kind"), ("内容 data", "data")]),
    ("时限 Deadlines", "deadlines", [("线索 lead", "lead_id"), ("时限 deadline", "name"), ("应完成 due", "due_at"),
                                   ("完成 done", "met_at"), ("判定 verdict", "verdict")]),
    ("通知对象 Told", "told", [("方式 kind", "kind"), ("线索 lead", "lead_id"), ("对象 who", "phone"),
                             ("小组 squad", "team_code"), ("姓名 name", "name"), ("状态 status", "status"),
                             ("时间 time", "at")]),
    ("电话 Calls", "calls", [("时间 time", "at"), ("线索 lead", "lead_id"), ("操作人 actor", "actor"),
                           ("结果 result", "result"), ("劝阻结果 outcome", "outcome")]),
    ("见面 Visits", "visits", [("线索 lead", "lead_id"), ("原因 reason", "reason"), ("请求 requested", "requested_at"),
                             ("应到场 due", "due_at"), ("状态 status", "status"), ("小组 squad", "team_code"),
                             ("完成 done", "done_at"), ("见面 met", "met_in_person"), ("结果 outcome", "outcome")]),
    ("回访 Callbacks", "callbacks", [("线索 lead", "lead_id"), ("应回访 due", "due_at"), ("完成 done", "done_at"),
                                   ("回访人 by", "actor"), ("结果 result", "result")]),
]


def _cell(v):
    if isinstance(v, dict | list):
        import orjson

        return orjson.dumps(v).decode()
    return v


def to_xlsx(r: dict) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "倒查 Review"
    c = r["case"]
    for label, value in [("案件编号 case", c["case_id"]), ("报案时间 reported", c["reported_at"]),
                         ("受害人电话 phone", c["victim"]["phone"]), ("身份证 ID", c["victim"]["id_number"]),
                         ("诈骗类型 fraud type", c["fraud_type"]), ("损失 loss (CNY)", c["loss_cny"]),
                         ("预警线索 warning lead", r["lead_id"]), ("生成 generated", r["generated_at"]),
                         *[(k, v) for k, v in r["totals"].items()]]:
        ws.append([label, value])
    for cell in ws["A"]:
        cell.font = Font(bold=True)
    for title, key, cols in SHEETS:
        sheet = wb.create_sheet(title)
        sheet.append([t for t, _ in cols])
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for row in r[key]:
            sheet.append([_cell(row.get(f)) for _, f in cols])
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


MONTH_COLUMNS = [("案件 case_id", lambda r: r["case_id"]), ("报案时间 reported_at", lambda r: r["reported_at"]),
                 ("生成 generated_at", lambda r: r["generated_at"]), ("电话 phone", lambda r: r["victim"]["phone"]),
                 ("身份证 id_number", lambda r: r["victim"]["id_number"]), ("诈骗类型 fraud_type", lambda r: r["fraud_type"]),
                 ("损失 loss_cny", lambda r: r["loss_cny"]), ("街道 street", lambda r: r["street_code"]),
                 ("预警线索 lead id", lambda r: (r["lead"] or {}).get("id")),
                 ("来源 source", lambda r: (r["lead"] or {}).get("source")), ("等级 tier", lambda r: r["tier"]),
                 ("超时 deadlines missed or late", lambda r: r["deadlines_missed"]),
                 ("倒查 review", lambda r: f"/review?case={r['case_id']}")]


def month_sheet(ws, lines: list[dict]) -> None:
    """The monthly report's sheet of the month's reviews (one line per case; the page has the rest)."""
    ws.append([t for t, _ in MONTH_COLUMNS])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for r in lines:
        ws.append([f(r) for _, f in MONTH_COLUMNS])
