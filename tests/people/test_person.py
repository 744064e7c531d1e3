"""一人一档: leads linked to one person by phone and ID number (a lead carrying both joins them), the
person's page and history listing all of it, and a wrong link split by a commander, audited."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, text

from dispatch.models import Lead, Person, PersonIdentifier
from dispatch.triage.service import earlier_warnings
from service.core.db import sync_session
from tests.factories import id_number
from tests.ladder.helpers import events, lead_of, lead_row, push

pytestmark = pytest.mark.usefixtures("district", "clean")

CST = timezone(timedelta(hours=8))
NOW = datetime.now(CST).replace(microsecond=0)
PHONE, IDN = "13600002222", id_number(600_001)


def _days_ago(days: float) -> str:
    return (NOW - timedelta(days=days)).isoformat()


async def _three_warnings(client, headers, run_worker) -> tuple[int, int, int]:
    """A phone-only lead, an ID-only lead (two persons until ...) and a lead with both, days apart."""
    ids = []
    for days, subject in ((9, {"phone": PHONE, "id_number": None}), (6, {"phone": None, "id_number": IDN}),
                          (3, {"phone": PHONE, "id_number": IDN})):
        ids.append(await push(client, headers, lead_of("P2", pushed_at=_days_ago(days), subject=subject)))
        await run_worker()
    return tuple(ids)


async def test_phone_only_id_only_and_both_are_one_person_with_three_warnings(client, source_headers, commander,
                                                                               run_worker, sync_engine):
    phone_only, id_only, both = await _three_warnings(client, source_headers, run_worker)
    rows = [lead_row(sync_engine, i) for i in (phone_only, id_only, both)]
    assert len({r.person_id for r in rows}) == 1 and rows[0].person_id is not None
    person = rows[0].person_id
    assert all(r.merged_into is None for r in rows)  # days apart: three warnings, three pieces of work
    # the ID-only lead had a person of its own until the third lead joined the two: it moved, and says so
    (moved,) = events(sync_engine, id_only, "person_merged")
    assert moved.data == {"from": moved.data["from"], "into": person, "by_lead": both} and moved.data["from"] != person
    with sync_engine.connect() as conn:
        gone = conn.execute(select(Person).where(Person.id == moved.data["from"])).one()
        assert gone.merged_into == person
        assert set(conn.execute(select(PersonIdentifier.kind, PersonIdentifier.value).where(
            PersonIdentifier.person_id == person)).all()) == {("phone", PHONE), ("id_number", IDN)}
    # the third lead counts both earlier warnings of the person: (in 7 days, in 30 days)
    with sync_session(sync_engine) as session:
        assert earlier_warnings(session, session.get(Lead, both)) == (2, 2)  # 3 and 6 days before

    page = await client.get(f"/api/v1/people/{person}", headers=commander)
    assert page.status_code == 200, page.text
    p = page.json()
    assert (p["id"], p["requested_id"], p["merged_from"]) == (person, person, [moved.data["from"]])
    assert [x["id"] for x in p["leads"]] == [phone_only, id_only, both]
    assert (p["totals"]["warnings"], p["totals"]["leads"], p["totals"]["merged"]) == (3, 3, 0)
    assert p["person"] == {"warned_30d": 3, "visits": 0}
    assert {(i["kind"], i["value"]) for i in p["identifiers"]} == {("phone", "136****2222"),
                                                                   ("id_number", IDN[:4] + "*" * 10 + IDN[-4:])}
    assert all(x["phone"] is None or "****" in x["phone"] for x in p["leads"])  # a list: masked
    # the merged person's old id still leads to the person
    old = (await client.get(f"/api/v1/people/{moved.data['from']}", headers=commander)).json()
    assert (old["id"], old["requested_id"]) == (person, moved.data["from"])

    # the history by either identifier is the whole person, not only the leads carrying that number
    for body in ({"phone": PHONE}, {"id_number": IDN.lower()}):
        h = await client.post("/api/v1/people/history", json=body, headers=commander)
        assert h.status_code == 200, h.text
        assert [x["id"] for x in h.json()["leads"]] == [phone_only, id_only, both]
        assert h.json()["person"]["id"] == person and h.json()["totals"]["warnings"] == 3
    # lead detail: the person and what the screen shows of them
    d = (await client.get(f"/api/v1/leads/{id_only}", headers=commander)).json()
    assert (d["person_id"], d["merged_into"], d["person"]) == (person, None, {"warned_30d": 3, "visits": 0})
    with sync_engine.connect() as conn:
        reads = conn.execute(text("SELECT what, count(*) FROM access_log WHERE what LIKE 'person.%' GROUP BY what"
                                  )).all()
    assert dict(reads) == {"person.page": 6, "person.history": 6}
    assert (await client.get("/api/v1/people/999999", headers=commander)).status_code == 404


async def test_a_wrong_link_is_split_by_a_commander_and_stays_split(client, source_headers, commander, make_user,
                                                                     run_worker, sync_engine):
    phone_only, id_only, both = await _three_warnings(client, source_headers, run_worker)
    person = lead_row(sync_engine, both).person_id
    body = {"phone": PHONE, "reason": "号码为家属共用"}
    operator = make_user("operator")
    assert (await client.post(f"/api/v1/people/{person}/split", json=body, headers=operator)).status_code == 403
    for bad, field in (({"reason": "x"}, "phone"), ({"phone": PHONE}, "reason"), ({"phone": PHONE, "reason": " "},
                                                                                  "reason")):
        r = await client.post(f"/api/v1/people/{person}/split", json=bad, headers=commander)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text
    missing = await client.post(f"/api/v1/people/{person}/split", json={"phone": "13900000000", "reason": "x"},
                                headers=commander)
    assert missing.status_code == 404

    r = await client.post(f"/api/v1/people/{person}/split", json=body, headers=commander)
    assert r.status_code == 200, r.text
    split = r.json()
    new = split["new_person_id"]
    assert (split["person_id"], split["lead_ids"], split["identifier"]) == (person, [phone_only, both], "136****2222")
    assert [lead_row(sync_engine, i).person_id for i in (phone_only, id_only, both)] == [new, person, new]
    for lead_id in (phone_only, both):  # audited on each lead moved: who, why
        (ev,) = events(sync_engine, lead_id, "person_split")
        assert ev.actor == f"user:{commander['X-Username']}" and ev.data["reason"] == "号码为家属共用"
        assert (ev.data["from"], ev.data["into"]) == (person, new)
    assert not events(sync_engine, id_only, "person_split")
    # the new person's only identifier cannot be split off again
    again = await client.post(f"/api/v1/people/{new}/split", json=body, headers=commander)
    assert again.status_code == 409

    # a later lead carrying both does not undo the split: linked to the ID number's person, said so
    later = await push(client, source_headers, lead_of("P2", pushed_at=_days_ago(1),
                                                       subject={"phone": PHONE, "id_number": IDN}))
    await run_worker()
    assert lead_row(sync_engine, later).person_id == person
    (refused,) = events(sync_engine, later, "person_link_refused")
    assert refused.data["split_id"] == split["split_id"] and refused.data["other_person_id"] == new
    with sync_engine.connect() as conn:
        assert conn.execute(select(Person.merged_into).where(Person.id == new)).scalar() is None
    page = (await client.get(f"/api/v1/people/{person}", headers=commander)).json()
    assert [x["id"] for x in page["leads"]] == [id_only, later]
    assert page["splits"][0]["lead_ids"] == [phone_only, both]


async def test_leads_without_a_valid_id_number_link_by_phone_only(client, source_headers, run_worker, sync_engine):
    bad = IDN[:-1] + ("0" if IDN[-1] != "0" else "1")  # a typo: its check digit fails
    a = await push(client, source_headers, lead_of("P2", pushed_at=_days_ago(5), subject={"phone": "13600003333",
                                                                                          "id_number": bad}))
    b = await push(client, source_headers, lead_of("P2", pushed_at=_days_ago(4), subject={"phone": "13600004444",
                                                                                          "id_number": bad}))
    await run_worker()
    ra, rb = lead_row(sync_engine, a), lead_row(sync_engine, b)
    assert ra.person_id != rb.person_id  # the same wrong number never joins two people
    with sync_engine.connect() as conn:
        assert conn.execute(select(Lead.id).where(Lead.person_id.is_(None))).all() == []


async def test_a_case_links_to_the_person_and_all_their_warnings(client, source_headers, commander, run_worker,
                                                                  sync_engine):
    """The victim reported by ID number only: the phone-only warning is theirs too (the person). Two cases
    of one person are two post-warning cases and one post-warning person."""
    phone_only, id_only, both = await _three_warnings(client, source_headers, run_worker)
    person = lead_row(sync_engine, both).person_id
    cases = [{"case_id": f"K-{n}", "reported_at": _days_ago(days), "victim": {"id_number": IDN},
              "fraud_type": "online_shopping", "loss_cny": 5000} for n, days in ((1, 8), (2, 1))]
    r = await client.post("/api/v1/cases/batch", json={"cases": cases}, headers=source_headers)
    assert [x["post_warning_of"]["id"] for x in r.json()["results"]] == [phone_only, both]  # the newest before each
    first = (await client.get("/api/v1/cases/K-1", headers=commander)).json()
    assert (first["person_id"], first["warning_lead_ids"]) == (person, [phone_only])  # by the person, not the number
    second = (await client.get("/api/v1/cases/K-2", headers=commander)).json()
    assert (second["person_id"], second["warning_lead_ids"]) == (person, [phone_only, id_only, both])
    assert second["post_warning_of"] == {"id": both, "source": "national_platform",
                                         "source_id": lead_row(sync_engine, both).source_id}
    total = (await client.get("/api/v1/stats", headers=commander)).json()["total"]
    assert (total["post_warning_cases"], total["post_warning_people"], total["people"]) == (2, 1, 1)
    assert total["post_warning_rate"] == 1.0  # one warned person, defrauded after a warning: 100 %, not 200 %
    page = (await client.get(f"/api/v1/people/{person}", headers=commander)).json()
    assert [c["case_id"] for c in page["cases"]] == ["K-1", "K-2"]
