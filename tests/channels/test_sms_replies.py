"""Kannel's callbacks in-process: who may call them, bad input named, an unknown sender kept and
answered with nothing; the pure parts (a reply's answer, a phone's forms, the templates' format)."""
from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from dispatch.ladder.replies import normalize_phone, offer_answer
from dispatch.ladder.sms import parse_templates
from dispatch.models import SmsInbound
from service.core.auth import hash_api_key, new_api_key
from service.core.db import sync_session
from service.core.models import ApiKey

pytestmark = pytest.mark.usefixtures("district", "clean")


@pytest.fixture
def key(sync_engine, settings, monkeypatch) -> str:
    name, key = f"sms-gw-{uuid.uuid4().hex[:6]}", new_api_key()
    with sync_session(sync_engine) as session:
        session.add(ApiKey(name=name, key_hash=hash_api_key(key), prefix=key[:8]))
        session.commit()
    monkeypatch.setattr(settings, "sms_gateway_key_name", name)
    return key


async def test_unknown_sender_is_kept_and_answered_with_nothing(client, key, sync_engine):
    r = await client.get("/api/v1/sms/kannel/mo", params={"key": key, "from": "+86 139 0000 7777", "to": "96110",
                                                         "text": "你好 1"})
    assert r.status_code == 200 and r.content == b""
    with sync_engine.connect() as conn:
        [row] = conn.execute(select(SmsInbound)).all()
    assert (row.from_phone, row.to_number, row.text, row.kind, row.lead_id) == \
        ("13900007777", "96110", "你好 1", "unknown", None)


async def test_callbacks_refuse_other_callers_and_name_bad_fields(client, key, source_headers):
    mo = {"from": "13900007777", "text": "1"}
    assert (await client.get("/api/v1/sms/kannel/mo", params={**mo, "key": "qz_nope"})).status_code == 401
    r = await client.get("/api/v1/sms/kannel/mo", params={**mo, "key": source_headers["X-API-Key"]})
    assert r.status_code == 403 and "key" in r.text
    r = await client.get("/api/v1/sms/kannel/mo", params={"from": "13900007777"})
    assert r.status_code == 422 and "key" in r.text
    r = await client.get("/api/v1/sms/kannel/mo", params={"key": key, "from": "<script>", "text": "1"})
    assert r.status_code == 422 and "from" in r.text
    r = await client.get("/api/v1/sms/kannel/dlr", params={"key": key, "id": 1, "status": 3})
    assert r.status_code == 422 and "status" in r.text
    r = await client.get("/api/v1/sms/kannel/dlr", params={"key": key, "id": "x", "status": 1})
    assert r.status_code == 422 and "id" in r.text
    r = await client.get("/api/v1/sms/kannel/dlr", params={"key": key, "id": 999999, "status": 1})
    assert r.status_code == 404


@pytest.mark.parametrize("text,answer", [("1", True), (" １ ", True), ("1。", True), ("接单", True), ("2", False),
                                         ("2 在忙", False), ("拒单", False), ("12", None), ("好的", None), ("", None)])
def test_offer_answer(text, answer):
    assert offer_answer(text) is answer


@pytest.mark.parametrize("raw,phone", [("+8613800138000", "13800138000"), ("008613800138000", "13800138000"),
                                       ("8613800138000", "13800138000"), ("138 0013 8000", "13800138000"),
                                       ("053288886666", "053288886666")])
def test_normalize_phone(raw, phone):
    assert normalize_phone(raw) == phone


def test_templates_name_the_bad_key():
    base = '[templates]\ndefault = "{name} {hotline}"\n'
    t = parse_templates(base + '[flash]\ndefault = "闪信 {name}"\n[offer]\ndefault = "{text} 回复1接单"\n', "t.toml")
    assert t.render_flash("fake_loan", "张三") == "闪信 张三" and t.render_offer("派单") == "派单 回复1接单"
    assert t.render_offer("派单 回复1接单") == "派单 回复1接单"  # already says how to answer
    for extra, key in (('[flash]\nfake_loan = "{who}"\n', "flash.fake_loan"), ('[offer]\ndefault = "{name}"\n', "offer"),
                       ('[flash]\nnot_a_type = "x"\n', "flash.not_a_type"), ('[other]\na = "x"\n', "[other]")):
        with pytest.raises(ValueError, match=key.replace("[", r"\[").replace("]", r"\]")):
            parse_templates(base + extra, "t.toml")
