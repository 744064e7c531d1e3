"""Cases (发案) and post-warning matching against the shared district's truth, in both arrival orders."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from dispatch.identity import normalize_phone
from dispatch.outcomes.cases import normalize_id_number, validate_case
from tests.data import shared_file


def _lines(name: str) -> list[dict]:
    with shared_file(name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _truth() -> dict[str, list | None]:
    return {t["case_id"]: t["post_warning_of"] for t in _lines("cases_truth.jsonl")}


def _victims_leads() -> list[dict]:
    """The leads about the cases' victims: everyone sharing a phone or an ID number with one, to a
    fixpoint (a lead carrying both links the two). Matching depends on these alone."""
    leads = _lines("leads.jsonl")
    keys = set()
    for c in _lines("cases.jsonl"):
        v = c.get("victim") or {}
        keys |= {("p", normalize_phone(v["phone"])) if v.get("phone") else None, ("i", normalize_id_number(v["id_number"]))
                 if v.get("id_number") else None} - {None}

    def ids(lead: dict) -> set:
        s = lead.get("subject") or {}
        idn = normalize_id_number(s["id_number"]) if isinstance(s.get("id_number"), str) else None
        phone = normalize_phone(s["phone"]) if isinstance(s.get("phone"), str) else None
        return {("p", phone) if phone else None, ("i", idn) if idn else None} - {None}

    chosen: list[dict] = []
    while True:
        more = [x for x in leads if x not in chosen and ids(x) & keys]
        if not more:
            return chosen
        chosen += more
        for x in more:
            keys |= ids(x)


async def _push_leads(client, headers, leads: list[dict] | None = None) -> None:
    leads = _lines("leads.jsonl") if leads is None else leads
    for i in range(0, len(leads), 1000):
        r = await client.post("/api/v1/leads/batch", json={"leads": leads[i:i + 1000]}, headers=headers)
        assert r.status_code == 200, r.text


async def _push_cases(client, headers) -> dict[str, dict | None]:
    cases, got = _lines("cases.jsonl"), {}
    for i in range(0, len(cases), 1000):
        r = await client.post("/api/v1/cases/batch", json={"cases": cases[i:i + 1000]}, headers=headers)
        assert r.status_code == 200, r.text
        for res in r.json()["results"]:
            assert res["status"] == "accepted", res
            got[res["case_id"]] = res["post_warning_of"]
    return got


def _as_truth(pwo: dict | None) -> list | None:
    return None if pwo is None else [pwo["source"], pwo["source_id"]]


def _and_others(victims: list[dict]) -> list[dict]:
    """The victims' leads and every tenth of the others, in the feed's order: the others show that a
    lead about someone else matches no case. (The whole feed is worked once by
    tests/workers/test_shared_district.py; working it again here cost the suite 100 s.)"""
    theirs = {json.dumps(x, sort_keys=True) for x in victims}
    return [x for i, x in enumerate(_lines("leads.jsonl")) if i % 10 == 0 or json.dumps(x, sort_keys=True) in theirs]


@pytest.mark.usefixtures("district", "clean")
async def test_leads_then_cases_match_the_truth(client, source_headers, commander, run_worker, sync_engine):
    victims = _victims_leads()
    leads = _and_others(victims)
    assert len(victims) < len(leads) < len(_lines("leads.jsonl"))
    await _push_leads(client, source_headers, leads)
    await run_worker()
    got = await _push_cases(client, source_headers)
    truth = _truth()
    assert {k: _as_truth(v) for k, v in got.items()} == truth
    assert sum(v is not None for v in truth.values()) > 0
    # the stored column says the same, and every matched lead is the victim's
    with sync_engine.connect() as conn:
        stored = dict(conn.execute(text(
            "SELECT c.case_id, l.source || '/' || l.source_id FROM case_report c "
            "LEFT JOIN lead l ON l.id = c.post_warning_lead_id")).all())
    assert stored == {k: None if v is None else "/".join(v) for k, v in truth.items()}
    with sync_engine.connect() as conn:  # each match is on its lead's timeline, once
        events = conn.execute(text("SELECT data->>'case_id' FROM lead_event WHERE kind = 'post_warning_case'"
                                   )).scalars().all()
    assert sorted(events) == sorted(k for k, v in truth.items() if v)
    # idempotent: the same case again is a duplicate with the same answer
    case = _lines("cases.jsonl")[0]
    again = await client.post("/api/v1/cases", json=case, headers=source_headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert _as_truth(again.json()["post_warning_of"]) == truth[case["case_id"]]


@pytest.mark.usefixtures("district", "clean")
async def test_cases_first_then_leads_give_the_same_result(client, source_headers, commander, run_worker,
                                                           sync_engine):
    early = await _push_cases(client, source_headers)
    assert all(v is None for v in early.values())  # nobody warned yet
    await _push_leads(client, source_headers, _victims_leads())  # the leads about everyone else can't matter
    await run_worker()
    truth = _truth()
    for case_id, expected in truth.items():
        r = await client.get(f"/api/v1/cases/{case_id}", headers=commander)
        assert r.status_code == 200, r.text
        assert _as_truth(r.json()["post_warning_of"]) == expected, case_id
    with sync_engine.connect() as conn:  # the last event of each case names the lead it ended with
        last = dict(conn.execute(text(
            "SELECT DISTINCT ON (data->>'case_id') data->>'case_id', l.source || '/' || l.source_id FROM lead_event e "
            "JOIN lead l ON l.id = e.lead_id WHERE e.kind = 'post_warning_case' ORDER BY data->>'case_id', e.id DESC"
        )).all())
    assert last == {k: "/".join(v) for k, v in truth.items() if v}


@pytest.mark.usefixtures("district", "clean")
async def test_bad_case_is_rejected_and_recorded_and_never_fails_a_batch(client, source_headers, commander,
                                                                         sync_engine):
    good = {"case_id": "C-OK-1", "reported_at": "2026-11-02T10:00:00+08:00",
            "victim": {"phone": "+86 139 0000 1111", "id_number": None}, "fraud_type": "fake_loan",
            "loss_cny": 100.5, "beat_code": None}
    bad = {"case_id": "C-BAD-1", "reported_at": "yesterday", "victim": {"phone": "12"}, "loss_cny": -1}
    r = await client.post("/api/v1/cases/batch", json={"cases": [good, bad]}, headers=source_headers)
    assert r.status_code == 200
    ok, rejected = r.json()["results"]
    assert ok["status"] == "accepted" and rejected["status"] == "rejected"
    assert {e["field"] for e in rejected["errors"]} == {"reported_at", "victim.phone", "loss_cny"}
    one = await client.post("/api/v1/cases", json=bad, headers=source_headers)
    assert one.status_code == 422 and one.json()["error"] == "validation_error"
    with sync_engine.connect() as conn:
        assert conn.execute(text("SELECT victim_phone FROM case_report WHERE case_id = 'C-OK-1'")).scalar() \
            == "13900001111"
        assert conn.execute(text("SELECT count(*) FROM rejection WHERE source = 'case' AND source_id = 'C-BAD-1'"
                                 )).scalar() == 2
    assert (await client.get("/api/v1/cases/nope", headers=commander)).status_code == 404


def test_id_numbers_normalise():
    assert normalize_id_number(" 3702 9919 8904 08568x ") == "37029919890408568X"
    assert normalize_id_number("12345") is None
    case, errs = validate_case({"case_id": "c", "reported_at": "2026-11-01T00:00:00",
                                "victim": {"id_number": "37029919890408568x"}})
    assert errs == [] and case.victim_id_number == "37029919890408568X" and case.fraud_type == "other"
    for loss in (1e308, 10**12, float("nan"), True, "5"):
        _case, errs = validate_case({"case_id": "c", "reported_at": "2026-11-01T00:00:00", "loss_cny": loss,
                                     "victim": {"phone": "13900001111"}})
        assert [e.field for e in errs] == ["loss_cny"], loss
    for bad in ({"case_id": "c\x00", "victim": {}}, [], {"case_id": "x" * 200, "reported_at": "99999-01-01",
                                                          "victim": {"phone": 5, "id_number": "abc"}}):
        _case, errs = validate_case(bad)
        assert errs and all(isinstance(e.field, str) for e in errs)
