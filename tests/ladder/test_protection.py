"""A busy line on an urgent lead, the family (保护圈), stop-payment as work, and contact that persists
until the person answers — on real PostgreSQL and Redis, with a moved clock."""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from dispatch.models import Alarm, SmsMessage
from service.core import clock
from service.core.db import sync_session
from tests.factories import INSIDE
from tests.ladder.helpers import events, received_at, tiered
from workers.tasks import sweep_deadlines

pytestmark = pytest.mark.usefixtures("district", "clean")


async def add_family(client, headers, lead_id, phone, relation="女儿"):
    return await client.post(f"/api/v1/leads/{lead_id}/family", headers=headers,
                             json={"name": "王芳", "relation": relation, "phone": phone})


def sms_to(sync_engine, lead_id, purpose):
    with sync_session(sync_engine) as s:
        return list(s.execute(select(SmsMessage).where(SmsMessage.lead_id == lead_id, SmsMessage.purpose == purpose))
                    .scalars())


async def test_a_busy_line_on_an_urgent_lead_starts_the_visit_and_tells_the_family(client, source_headers, make_user,
                                                                                   run_worker, sync_engine):
    operator = make_user("operator")
    lead_id = await tiered(client, source_headers, run_worker, "P1")
    r = await add_family(client, operator, lead_id, "18612345678")
    assert r.status_code == 201 and r.json()["phone"] == "18612345678"
    r = await client.post(f"/api/v1/leads/{lead_id}/calls", headers=operator, json={"result": "busy"})
    assert r.status_code == 201 and r.json()["rules"] == ["busy_line"]  # one busy call, not three
    assert r.json()["lead"]["needs_call"] is True  # and the operators keep calling
    escalated = [e.data for e in events(sync_engine, lead_id, "escalated")]
    assert [(e["rule"], e["to"]) for e in escalated] == [("busy_line", "visit")]
    (told,) = [e.data for e in events(sync_engine, lead_id, "family_notified")]
    assert told["rule"] == "busy_line" and told["contacts"] == 1 and told["to"] == ["186****5678"]
    (sms,) = sms_to(sync_engine, lead_id, "family")
    assert sms.to_phone == "18612345678" and "可能正在遭遇电信网络诈骗" in sms.body
    # a second busy call tells nobody twice
    await client.post(f"/api/v1/leads/{lead_id}/calls", headers=operator, json={"result": "busy"})
    assert len(sms_to(sync_engine, lead_id, "family")) == 1
    # a P2 busy line is an ordinary failed call
    p2 = await tiered(client, source_headers, run_worker, "P2")
    r = await client.post(f"/api/v1/leads/{p2}/calls", headers=operator, json={"result": "busy"})
    assert r.json()["rules"] == []


async def test_the_family_circle_is_the_persons_bounded_and_checked(client, source_headers, make_user, run_worker):
    operator = make_user("operator")
    lead_id = await tiered(client, source_headers, run_worker, "P2")
    bad = await add_family(client, operator, lead_id, "12345")
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "phone"
    missing = await client.post(f"/api/v1/leads/{lead_id}/family", headers=operator, json={"name": "王芳"})
    assert missing.status_code == 422 and "relation" in missing.text
    for i, phone in enumerate(("18611110001", "18611110002", "18611110003")):
        assert (await add_family(client, operator, lead_id, phone, f"亲属{i}")).status_code == 201
    assert (await add_family(client, operator, lead_id, "18611110001")).status_code == 409  # already there
    assert (await add_family(client, operator, lead_id, "18611110004")).status_code == 409  # full: 3
    listed = (await client.get(f"/api/v1/leads/{lead_id}/family", headers=operator)).json()
    assert [c["phone"] for c in listed["items"]] == ["18611110001", "18611110002", "18611110003"]
    # a squad not on the lead sees nothing of it
    other = make_user("police", INSIDE["team"])
    assert (await client.get(f"/api/v1/leads/{lead_id}/family", headers=other)).status_code == 404
    assert (await client.get("/api/v1/leads/999999/family", headers=operator)).status_code == 404


async def test_stop_payment_lapses_unanswered_into_an_alarm_twice_allowed_a_third_refused(
        client, source_headers, make_user, run_worker, sync_engine):
    operator = make_user("operator")
    lead_id = await tiered(client, source_headers, run_worker, "P0")
    body = {"bank": "中国工商银行", "account": "6222020200112233445", "amount_cny": 50000}
    first = await client.post(f"/api/v1/leads/{lead_id}/stop-payments", headers=operator, json=body)
    assert first.status_code == 201, first.text
    first = first.json()
    assert first["seq"] == 1 and first["status"] == "requested"
    t0 = clock.now()
    with clock.frozen(t0 + timedelta(hours=2, minutes=1)):  # the bank said nothing in 2 h
        sweep_deadlines()
        with sync_session(sync_engine) as s:
            kinds = [a.kind for a in s.execute(select(Alarm).where(Alarm.lead_id == lead_id)).scalars()]
        assert "stop_payment" in kinds
    with clock.frozen(t0 + timedelta(hours=48, minutes=1)):  # and its 48 h passed
        sweep_deadlines()
        listed = (await client.get(f"/api/v1/leads/{lead_id}/stop-payments", headers=operator)).json()["items"]
        assert [r["status"] for r in listed] == ["lapsed"]
        second = await client.post(f"/api/v1/leads/{lead_id}/stop-payments", headers=operator, json=body)
        assert second.status_code == 201 and second.json()["seq"] == 2
        third = await client.post(f"/api/v1/leads/{lead_id}/stop-payments", headers=operator, json=body)
        assert third.status_code == 409 and "at most 2" in third.text
        # the bank froze it: the amount counts as saved, the request's alarm ends
        r = await client.post(f"/api/v1/stop-payments/{second.json()['id']}/answer", headers=operator,
                              json={"status": "frozen", "saved_cny": 48000})
        assert r.status_code == 200 and r.json()["status"] == "frozen"
        again = await client.post(f"/api/v1/stop-payments/{second.json()['id']}/answer", headers=operator,
                                  json={"status": "refused"})
        assert again.status_code == 409
    lead = (await client.post(f"/api/v1/leads/{lead_id}/sign", headers=operator)).json()  # the lead's state
    assert lead["saved_cny"] == 48000.0 and "stop_payment" in lead["flags"]
    bad = await client.post(f"/api/v1/stop-payments/{second.json()['id']}/answer", headers=operator,
                            json={"status": "maybe"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "status"
    assert (await client.post("/api/v1/stop-payments/424242/answer", headers=operator,
                              json={"status": "refused"})).status_code == 404


PERSISTENT = (Path(__file__).parents[2] / "dispatch" / "policy.toml").read_text(encoding="utf-8") + '''
[contact.P1]
every = "5m"
channels = ["flash_sms", "robot_call"]
operator_after = 2
until = "30m"
'''


@pytest.fixture
def persistent_policy(tmp_path, monkeypatch):
    from dispatch.policy import load_policy
    from workers.tasks import ctx
    path = tmp_path / "policy.toml"
    path.write_text(PERSISTENT, encoding="utf-8")
    policy = load_policy(path)
    ctx.__dict__.pop("field", None)
    monkeypatch.setitem(ctx.__dict__, "policy", policy)  # the workers' policy (a cached property)
    yield policy
    ctx.__dict__.pop("field", None)


async def test_contact_persists_at_the_policys_spacing_and_stops_at_the_first_answer(
        client, source_headers, make_user, run_worker, sync_engine, persistent_policy):
    operator = make_user("operator")
    lead_id = await tiered(client, source_headers, run_worker, "P1")
    t0 = received_at(sync_engine, lead_id)
    rounds = [e.data["round"] for e in events(sync_engine, lead_id, "contact_round")]
    assert rounds == [1]  # the first round at once
    for minute in (4, 5, 9, 10, 12):
        with clock.frozen(t0 + timedelta(minutes=minute, seconds=1)):
            sweep_deadlines()
    rounds = [(e.data["round"], e.at) for e in events(sync_engine, lead_id, "contact_round")]
    assert [r for r, _ in rounds] == [1, 2, 3]  # at 0, 5 and 10 minutes: nothing at 4, 9 or 12
    sms = [m for m in sms_to(sync_engine, lead_id, "warning") if "contact" in m.idempotency_key]
    assert len(sms) == 3 and all(m.flash for m in sms)  # 闪信, class 0
    with clock.frozen(t0 + timedelta(minutes=13)):  # the person answers an operator
        r = await client.post(f"/api/v1/leads/{lead_id}/calls", headers=operator,
                              json={"result": "connected", "outcome": "refused"})
        assert r.status_code == 201
    for minute in (15, 20, 25, 31):
        with clock.frozen(t0 + timedelta(minutes=minute, seconds=1)):
            sweep_deadlines()
    assert len(events(sync_engine, lead_id, "contact_round")) == 3  # stopped at the answer
    (stopped,) = [e.data for e in events(sync_engine, lead_id, "contact_stopped")]
    assert stopped["why"] == "connected"
