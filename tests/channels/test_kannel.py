"""SMS through a real Kannel (bearerbox + smsbox, fakesmsc as the SMSC) and quanzu's API in its own
process, which Kannel calls back: a warning's Chinese text reaches the phone intact and its delivery
report marks it delivered; a flash warning goes out as class 0; a squad member's `1` accepts the
offer SMS it answers; a warned person's reply lands on the lead's timeline and the board."""
from __future__ import annotations

import time
import uuid

import orjson
import pytest
from redis import Redis
from sqlalchemy import select, text

from dispatch import outbox
from dispatch.ladder.gateways import KannelGateway
from dispatch.ladder.sms import active_templates, send_warning_sms
from dispatch.models import Assignment, Lead, SmsInbound, SmsMessage
from service.core.auth import hash_api_key, new_api_key
from service.core.db import sync_session
from service.core.models import ApiKey
from tests.channels.kannel import Api, Kannel, missing
from tests.factories import INSIDE
from tests.ladder.helpers import events, lead_row, tiered
from workers import tasks

pytestmark = pytest.mark.usefixtures("district", "clean")


def gateway_key(sync_engine) -> tuple[str, str]:
    """A fresh API key for the gateway → (its name, the key)."""
    name, key = f"sms-gateway-{uuid.uuid4().hex[:6]}", new_api_key()
    with sync_session(sync_engine) as session:
        session.add(ApiKey(name=name, key_hash=hash_api_key(key), prefix=key[:8]))
        session.commit()
    return name, key


@pytest.fixture(scope="module")
def kannel(settings, district, sync_engine, tmp_path_factory):
    why = missing()
    if why:
        pytest.fail(why)
    name, key = gateway_key(sync_engine)
    api = Api(settings.database_url, settings.redis_url, {"SMS_GATEWAY_KEY_NAME": name}).start()
    k = Kannel(tmp_path_factory.mktemp("kannel"), api.url, key)
    try:
        k.start()
        tasks.ctx.__dict__["gateway"] = KannelGateway(k.sendsms_url, "quanzu", k.password, "96110", api.url, key)
        yield k
    finally:
        tasks.ctx.__dict__.pop("gateway", None)
        k.stop()
        api.stop()


def until(what: str, fn, timeout: float = 30):
    """Wait for Kannel's round trips (MT → fakesmsc → DLR → quanzu); → fn's first truthy answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not seen within {timeout}s: {what}")


def sms_of(sync_engine, **where) -> list:
    q = select(SmsMessage).order_by(SmsMessage.id)
    for k, v in where.items():
        q = q.where(getattr(SmsMessage, k) == v)
    with sync_engine.connect() as conn:
        return list(conn.execute(q))


def to(kannel: Kannel, phone: str) -> list:
    return [m for m in kannel.received() if m.to == phone]


async def test_warning_reaches_the_phone_in_chinese_and_its_dlr_marks_it_delivered(kannel, client, source_headers,
                                                                                     sync_engine, run_worker):
    lead_id = await tiered(client, source_headers, run_worker, "P3", subject={"name": "王芳"})
    phone = lead_row(sync_engine, lead_id).phone
    [msg] = sms_of(sync_engine, lead_id=lead_id)
    assert msg.status in ("sent", "delivered") and msg.gateway_message_id == f"kannel-{msg.id}" and not msg.flash
    [mt] = until("the warning at fakesmsc", lambda: to(kannel, phone))
    assert (mt.sender, mt.coding, mt.text) == ("96110", "ucs-2", msg.body)  # UCS-2 on the air, every character kept
    assert mt.text == active_templates().render("online_shopping", "王芳") and "王芳" in mt.text
    row = until("the DLR in quanzu", lambda: next((r for r in sms_of(sync_engine, id=msg.id)
                                                  if r.status == "delivered"), None))
    assert row.gateway_status == "1:delivered" and row.receipt_at is not None
    assert [e.data["message_id"] for e in events(sync_engine, lead_id, "sms_delivered")] == [msg.id]
    assert {e.data["code"] for e in events(sync_engine, lead_id, "sms_dlr")} <= {8, 4}  # recorded, not final
    assert (phone, -1, 2) in kannel.sent_flags()  # a normal SMS: no message class, UCS-2


async def test_flash_warning_goes_out_as_class_0(kannel, client, source_headers, sync_engine, run_worker):
    lead_id = await tiered(client, source_headers, run_worker, "P3", subject={"name": "赵磊"})
    phone = lead_row(sync_engine, lead_id).phone
    until("the first warning at fakesmsc", lambda: to(kannel, phone))
    with sync_session(sync_engine) as session:
        lead = session.get(Lead, lead_id)
        flash_id = send_warning_sms(session, lead, "test", flash=True)
        again = send_warning_sms(session, lead, "test", flash=True)  # one per lead unless a key says otherwise
        session.commit()
    assert again == flash_id
    assert tasks.send_sms([flash_id]) == {"sent": 1}
    [flash] = sms_of(sync_engine, id=flash_id)
    assert flash.flash and flash.body == active_templates().render_flash("online_shopping", "赵磊")
    mts = until("the flash SMS at fakesmsc", lambda: len(to(kannel, phone)) == 2 and to(kannel, phone))
    assert mts[1].text == flash.body
    assert [f[1:] for f in kannel.sent_flags() if f[0] == phone] == [(-1, 2), (0, 2)]  # mclass 0: 闪信
    until("the flash SMS delivered", lambda: sms_of(sync_engine, id=flash_id)[0].status == "delivered")


@pytest.fixture
def squad(sync_engine, make_user):
    """The inside team alone on duty, its three members with accounts linked to their roster rows —
    and no other login: the team's logins made by earlier tests are inactive until the test is done."""
    code = INSIDE["team"]
    with sync_engine.begin() as conn:
        conn.execute(text("UPDATE team SET status = 'off_duty', last_lon = NULL, last_lat = NULL, last_at = NULL"))
        conn.execute(text("UPDATE team_member SET username = NULL WHERE team_code = :t"), {"t": code})
        earlier = list(conn.execute(text("UPDATE app_user SET active = false WHERE team_code = :t AND active "
                                         "RETURNING username"), {"t": code}).scalars())
    members = {}
    for role in ("police", "auxiliary", "grid_worker"):
        name = make_user(role, code)["X-Username"]
        with sync_engine.begin() as conn:
            members[name] = conn.execute(text(
                "UPDATE team_member SET username = :u WHERE id = (SELECT min(id) FROM team_member "
                "WHERE team_code = :t AND role = :r) RETURNING phone"), {"u": name, "t": code, "r": role}).scalar()
    with sync_engine.begin() as conn:
        conn.execute(text("UPDATE team SET status = 'on_duty', last_lon = home_lon, last_lat = home_lat, "
                          "last_at = now() WHERE code = :t"), {"t": code})
    yield code, members
    with sync_engine.begin() as conn:
        conn.execute(text("UPDATE team SET status = 'off_duty' WHERE code = :t"), {"t": code})
        conn.execute(text("UPDATE app_user SET active = true WHERE username = ANY(:u)"), {"u": earlier})


async def test_a_members_reply_1_accepts_the_offer_it_answers(kannel, client, source_headers, sync_engine,
                                                                run_worker, squad):
    code, members = squad
    lead_id = await tiered(client, source_headers, run_worker, "P1_resident")
    with sync_engine.connect() as conn:
        [a] = conn.execute(select(Assignment).where(Assignment.lead_id == lead_id)).all()
        offered_to = set(conn.execute(text("SELECT username FROM offer_delivery WHERE assignment_id = :a"),
                                      {"a": a.id}).scalars())
    assert a.team_code == code and a.status == "offered"
    assert offered_to == set(members)  # the squad's three logins, none of an earlier test's
    offers = sms_of(sync_engine, assignment_id=a.id)
    assert {o.to_phone for o in offers} == set(members.values()) and {o.status for o in offers} <= {"sent", "delivered"}
    username, phone = next(iter(members.items()))
    [mt] = until("the offer SMS at the member's phone", lambda: to(kannel, phone))
    assert mt.text.endswith("回复1接单，回复2拒单") and "【反诈派单】" in mt.text
    kannel.mo(phone, "1")
    accepted = until("the offer accepted by SMS", lambda: next(
        (x for x in _assignment(sync_engine, a.id) if x.status == "accepted"), None))
    assert accepted.accepted_by == username
    assert lead_row(sync_engine, lead_id).assigned_team == code
    [reply] = _inbound(sync_engine, phone)
    assert (reply.kind, reply.assignment_id, reply.lead_id, reply.text) == ("offer_accept", a.id, lead_id, "1")
    assert [e.actor for e in events(sync_engine, lead_id, "accepted")] == [f"user:{username}"]
    # another member's `2` after the accept changes nothing: that offer is no longer open
    other = [p for u, p in members.items() if u != username][0]
    kannel.mo(other, "2")
    until("the late reply kept", lambda: _inbound(sync_engine, other))
    assert _assignment(sync_engine, a.id)[0].status == "accepted"


async def test_a_warned_persons_reply_reaches_the_timeline_and_the_board(kannel, client, source_headers, sync_engine,
                                                                         run_worker, redis_url):
    lead_id = await tiered(client, source_headers, run_worker, "P3")
    phone = lead_row(sync_engine, lead_id).phone
    until("the warning at fakesmsc", lambda: to(kannel, phone))
    kannel.mo(phone, "收到，我没有转账，谢谢提醒")
    [e] = until("the reply on the timeline", lambda: events(sync_engine, lead_id, "sms_reply"))
    assert e.data["text"] == "收到，我没有转账，谢谢提醒" and e.data["from"] == phone[:3] + "****" + phone[7:]
    board = [orjson.loads(f[b"m"]) if b"m" in f else f for _, f in
             Redis.from_url(redis_url).xrange(outbox.stream_key(outbox.BOARD))]
    replies = [b for b in map(str, board) if "收到，我没有转账" in b]
    assert replies, "no lead.updated with the reply on the board"
    [kept] = _inbound(sync_engine, phone)
    assert (kept.kind, kept.lead_id) == ("reply", lead_id)


def _assignment(sync_engine, assignment_id: int) -> list:
    with sync_engine.connect() as conn:
        return list(conn.execute(select(Assignment).where(Assignment.id == assignment_id)))


def _inbound(sync_engine, phone: str) -> list:
    with sync_engine.connect() as conn:
        return list(conn.execute(select(SmsInbound).where(SmsInbound.from_phone == phone).order_by(SmsInbound.id)))
