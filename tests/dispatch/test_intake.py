"""Intake over HTTP against real PostgreSQL and Redis: stored before the answer, never doubled,
every defect a 4xx naming the field."""
from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import func, select, text

from dispatch.intake import repository
from dispatch.intake.validation import validate_lead
from dispatch.models import Lead, LeadEvent, Rejection
from service.core.settings import plain_url
from tests.factories import INSIDE, OUTSIDE, VALID_ID, make_lead
from tests.waiting import lock_waiters, until

pytestmark = pytest.mark.usefixtures("district", "clean")


def count(sync_engine, model, *where) -> int:
    with sync_engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model).where(*where)).scalar_one()


async def test_lead_is_stored_before_the_answer_and_worked_by_a_worker(client, source_headers, commander,
                                                                       sync_engine, run_worker):
    lead = make_lead(warning_type="fund_transfer", risk_level=1, amount_cny=5000.5)
    r = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "received" and body["duplicate"] is False and body["flags"] == []
    # committed before the 202: another connection sees it, with its `received` event
    with sync_engine.connect() as conn:
        row = conn.execute(select(Lead).where(Lead.id == body["id"])).one()
        assert (row.source_id, row.phone, row.status, float(row.amount_cny)) == \
               (lead["source_id"], lead["subject"]["phone"], "received", 5000.5)
        kinds = conn.execute(select(LeadEvent.kind).where(LeadEvent.lead_id == body["id"])).scalars().all()
        assert kinds == ["received"]

    await run_worker()
    detail = (await client.get(f"/api/v1/leads/{body['id']}", headers=commander)).json()
    assert detail["status"] == "tiered"
    assert detail["placement"]["beat_code"] == INSIDE["beat"]
    assert detail["placement"]["street_code"] == INSIDE["street"]
    assert detail["placement"]["in_jurisdiction"] is True
    assert detail["tier"]["tier"] == "P0" and "fund_transfer_warning" in detail["tier"]["reasons"]
    assert "visit" in detail["tier"]["response"] and "on_scene" in detail["tier"]["deadlines"]
    # A P0 lead needs a squad: the tiering requests the visit (field dispatch takes it from there).
    assert [e["kind"] for e in detail["timeline"]][:4] == ["received", "placed", "tiered", "visit_requested"]
    assert detail["timeline"][0]["actor"] == "source:test-platform"
    assert detail["subject"]["phone"] == lead["subject"]["phone"]  # full value for a center role
    assert count(sync_engine, text("access_log")) == 1  # ... and that read is audited


async def test_out_of_district_is_transferred_not_dispatched(client, source_headers, commander, run_worker):
    lead = make_lead(location=OUTSIDE)
    lead_id = (await client.post("/api/v1/leads", json=lead, headers=source_headers)).json()["id"]
    await run_worker()
    d = (await client.get(f"/api/v1/leads/{lead_id}", headers=commander)).json()
    assert d["status"] == "transferred"
    assert d["placement"]["in_jurisdiction"] is False and d["placement"]["beat_code"] is None
    # registered in the district (370299) but somewhere outside the city: no unit to name
    assert d["transfer"] == {"to": "outside_city", "reason": "out_of_jurisdiction"}
    kinds = [e["kind"] for e in d["timeline"]]
    assert kinds[:3] == ["received", "placed", "transferred"]
    # a P1 (risk 2, fake investment) outside the city still gets its warning SMS and first call here (issue 23)
    assert d["tier"]["tier"] == "P1" and {"sms_queued", "urgent_steps"} <= set(kinds)
    assert "visit_requested" not in kinds


async def test_gcj02_point_is_normalised_before_placing(client, source_headers, commander, run_worker):
    from geo.crs import from_wgs84

    glon, glat = from_wgs84(INSIDE["lon"], INSIDE["lat"], "gcj02")
    lead_id = (await client.post("/api/v1/leads", json=make_lead(location={"lon": glon, "lat": glat,
                                                                           "crs": "gcj02"}),
                                 headers=source_headers)).json()["id"]
    await run_worker()
    d = (await client.get(f"/api/v1/leads/{lead_id}", headers=commander)).json()
    assert d["placement"]["beat_code"] == INSIDE["beat"]
    assert abs(d["placement"]["lon"] - INSIDE["lon"]) < 1e-6 and abs(d["placement"]["lat"] - INSIDE["lat"]) < 1e-6


async def test_same_source_id_again_is_a_duplicate(client, source_headers, sync_engine):
    lead = make_lead()
    first = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    again = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json() == {"id": first.json()["id"], "duplicate": True}
    assert count(sync_engine, Lead) == 1 and count(sync_engine, LeadEvent) == 1


async def test_racing_pushes_create_exactly_one_lead(client, source_headers, sync_engine):
    lead = make_lead()
    answers = await asyncio.gather(*[client.post("/api/v1/leads", json=lead, headers=source_headers)
                                     for _ in range(20)])
    assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
    assert len({a.json()["id"] for a in answers}) == 1
    assert count(sync_engine, Lead) == 1


async def test_push_that_loses_the_race_on_another_connection_gets_the_winners_id(settings, sync_engine):
    """Connection A inserts and holds its transaction open; B's insert must wait, then answer A's id."""
    row = repository.lead_row(validate_lead(make_lead()).lead, [])
    a = await asyncpg.connect(plain_url(settings.database_url))
    b = await asyncpg.connect(plain_url(settings.database_url))
    try:
        tx = a.transaction()
        await tx.start()
        a_id, a_created = await repository.insert_lead(a, row, "test:a")
        racing = asyncio.create_task(repository.insert_lead(b, row, "test:b"))
        b_pid = b.get_server_pid()
        await until(lambda: b_pid in lock_waiters(sync_engine, a.get_server_pid()), 10,
                    f"B (backend {b_pid}) waiting on A's uncommitted row")
        assert not racing.done()  # blocked on A's uncommitted row
        await tx.commit()
        b_id, b_created = await asyncio.wait_for(racing, 5)
    finally:
        await a.close()
        await b.close()
    assert (a_created, b_created) == (True, False) and a_id == b_id
    assert count(sync_engine, Lead) == 1


@pytest.mark.parametrize("change, field", [
    ({"source_id": None}, "source_id"),
    ({"pushed_at": "yesterday 3pm"}, "pushed_at"),
    ({"risk_level": 7}, "risk_level"),
    ({"risk_level": "high"}, "risk_level"),
    ({"amount_cny": -3}, "amount_cny"),
    ({"location": {"lon": 120.3, "lat": 136.0, "crs": "wgs84"}}, "location.lat"),
    ({"location": {"lon": 120.3, "lat": 36.0, "crs": "epsg:9999"}}, "location.crs"),
    ({"location": 5}, "location"),
    ({"subject": {"phone": "1381234"}}, "subject.phone"),
    ({"subject": {"phone": None}, "location": None}, "subject.phone"),
    ({"source": "twitter"}, "source"),
])
async def test_hard_defect_is_a_422_naming_the_field_and_is_recorded(client, source_headers, commander,
                                                                     sync_engine, change, field):
    lead = make_lead()
    for k, v in change.items():
        lead[k] = {**lead[k], **v} if k == "subject" else v
    r = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "validation_error"
    assert field in [e["field"] for e in r.json()["detail"]]
    assert count(sync_engine, Lead) == 0
    listed = (await client.get("/api/v1/rejections", headers=commander)).json()
    assert listed["total"] == 1 and listed["by_field"].get(field) == 1
    assert listed["items"][0]["actor"] == "source:test-platform"


async def test_soft_defects_are_accepted_and_flagged(client, source_headers, sync_engine):
    r = await client.post("/api/v1/leads", json=make_lead(fraud_type="xyz_unknown",
                                                          subject={"id_number": "370299198904085680"}),
                          headers=source_headers)
    assert r.status_code == 202
    assert set(r.json()["flags"]) == {"id_number_invalid", "fraud_type_unknown"}
    with sync_engine.connect() as conn:
        row = conn.execute(select(Lead.fraud_type, Lead.fraud_type_raw, Lead.id_number)).one()
    assert tuple(row) == ("other", "xyz_unknown", "370299198904085680")  # kept as pushed


@pytest.mark.parametrize("body, status", [
    (b"{not json", 400),
    (b"[]", 422),
    (b"null", 422),
    (b"\"a string\"", 422),
])
async def test_malformed_bodies_are_4xx_never_500(client, source_headers, body, status):
    r = await client.post("/api/v1/leads", content=body,
                          headers={**source_headers, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert "error" in r.json() and "detail" in r.json()


async def test_body_over_one_mib_is_413(client, source_headers, sync_engine):
    lead = make_lead(counterpart={"note": "x" * (1024 * 1024)})
    r = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    assert r.status_code == 413 and r.json()["error"] == "payload_too_large"
    assert count(sync_engine, Lead) == 0


async def test_batch_mixes_accepted_duplicate_and_rejected(client, source_headers, sync_engine, run_worker,
                                                           commander):
    a, b = make_lead(), make_lead(risk_level=9)
    r = await client.post("/api/v1/leads/batch", json={"leads": [a, b, a, make_lead()]}, headers=source_headers)
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["status"] for x in results] == ["accepted", "rejected", "duplicate", "accepted"]
    assert results[0]["id"] == results[2]["id"]
    assert results[1]["errors"][0]["field"] == "risk_level"
    assert count(sync_engine, Lead) == 2 and count(sync_engine, Rejection) == 1
    assert count(sync_engine, LeadEvent, LeadEvent.kind == "received") == 2
    again = (await client.post("/api/v1/leads/batch", json={"leads": [a]}, headers=source_headers)).json()
    assert again["results"][0] == {"index": 0, "status": "duplicate", "id": results[0]["id"], "flags": []}
    await run_worker()
    assert count(sync_engine, Lead, Lead.status == "tiered") == 2


@pytest.mark.parametrize("body", [{"leads": []}, {"leads": "x"}, {}, {"leads": [{}] * 1001}])
async def test_batch_shape_errors_are_422(client, source_headers, body, sync_engine):
    r = await client.post("/api/v1/leads/batch", json=body, headers=source_headers)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "leads"
    assert count(sync_engine, Rejection) == 0


async def test_batch_of_1000_is_taken(client, source_headers, sync_engine):
    r = await client.post("/api/v1/leads/batch", json={"leads": [make_lead() for _ in range(1000)]},
                          headers=source_headers)
    assert r.status_code == 200
    assert {x["status"] for x in r.json()["results"]} == {"accepted"}
    assert count(sync_engine, Lead) == 1000


async def test_list_is_masked_filtered_and_paged(client, source_headers, commander, run_worker):
    # one person (one ID number) warned on five days: a day apart, each warning is its own work
    ids = [(await client.post("/api/v1/leads", json=make_lead(risk_level=3, subject={"id_number": VALID_ID},
                                                              pushed_at=f"2026-11-0{day}T09:30:00+08:00"),
                              headers=source_headers)).json()["id"]
           for day in range(1, 6)]
    out = (await client.post("/api/v1/leads", json=make_lead(location=OUTSIDE),
                             headers=source_headers)).json()["id"]
    await run_worker()
    page1 = (await client.get("/api/v1/leads?limit=2&status=tiered", headers=commander)).json()
    page2 = (await client.get(f"/api/v1/leads?limit=2&status=tiered&cursor={page1['next_cursor']}",
                              headers=commander)).json()
    page3 = (await client.get(f"/api/v1/leads?limit=2&status=tiered&cursor={page2['next_cursor']}",
                              headers=commander)).json()
    seen = [x["id"] for p in (page1, page2, page3) for x in p["items"]]
    assert seen == sorted(ids, reverse=True) and page3["next_cursor"] is None
    item = page1["items"][0]
    assert item["subject"]["phone"][3:7] == "****" and item["subject"]["id_number"] == "3702**********5688"
    transferred = (await client.get("/api/v1/leads?status=transferred", headers=commander)).json()["items"]
    assert [x["id"] for x in transferred] == [out]
    # the same person (one ID number) warned again within 7 days: P3 → P2 from the second warning on
    p3 = (await client.get(f"/api/v1/leads?beat={INSIDE['beat']}&tier=P3", headers=commander)).json()["items"]
    p2 = (await client.get(f"/api/v1/leads?beat={INSIDE['beat']}&tier=P2", headers=commander)).json()["items"]
    assert [x["id"] for x in p3] == ids[:1] and sorted(x["id"] for x in p2) == ids[1:]
    bad = await client.get("/api/v1/leads?status=lost", headers=commander)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "status"
    assert (await client.get("/api/v1/leads?cursor=@@", headers=commander)).status_code == 400


async def test_who_may_call_what(client, source_headers, make_user):
    lead_id = (await client.post("/api/v1/leads", json=make_lead(), headers=source_headers)).json()["id"]
    police = make_user("police", team=INSIDE["team"])
    grid = make_user("grid_worker", team=INSIDE["team"])
    assert (await client.post("/api/v1/leads", json=make_lead())).status_code == 401
    assert (await client.post("/api/v1/leads", json=make_lead(), headers={"X-API-Key": "qz_wrong"})).status_code == 401
    assert (await client.get("/api/v1/leads", headers=source_headers)).status_code == 403
    assert (await client.post("/api/v1/leads", json=make_lead(), headers=police)).status_code == 403
    assert (await client.get("/api/v1/rejections", headers=grid)).status_code == 403
    # a squad sees only leads assigned to it: this one is not
    assert (await client.get(f"/api/v1/leads/{lead_id}", headers=police)).status_code == 404
    assert (await client.get("/api/v1/leads", headers=police)).json()["items"] == []
    assert (await client.get("/api/v1/leads/999999999", headers=make_user("operator"))).status_code == 404
    assert (await client.get("/api/v1/leads/99999999999999999999", headers=make_user("operator"))).status_code == 422


async def test_login_gives_a_token_that_works(client, make_user, sync_engine):
    who = make_user("operator", password="s3cret-pw")
    form = {"username": who["X-Username"], "password": "s3cret-pw"}
    r = await client.post("/api/v1/auth/token", data=form)
    assert r.status_code == 200 and r.json()["token_type"] == "bearer"
    token = r.json()["access_token"]
    assert (await client.get("/api/v1/leads", headers={"Authorization": f"Bearer {token}"})).status_code == 200
    assert (await client.post("/api/v1/auth/token", data={**form, "password": "nope"})).status_code == 401
    assert (await client.get("/api/v1/leads", headers={"Authorization": "Bearer x.y.z"})).status_code == 401


async def test_phone_and_id_numbers_never_reach_the_logs(client, source_headers, run_worker, capfd):
    lead = make_lead(subject={"phone": "13912345678", "id_number": "370299198904085688"})
    await client.post("/api/v1/leads", json=lead, headers=source_headers)
    await client.post("/api/v1/leads", json=make_lead(subject={"phone": "1391234"}, location=None),
                      headers=source_headers)
    await run_worker()
    from service.core.logging import log

    log.warning("probe", phone="13912345678", note="caller 13912345678 id 370299198904085688")
    err = capfd.readouterr().err
    assert "probe" in err and "139****5678" in err
    assert "13912345678" not in err and "370299198904085688" not in err


async def test_a_nul_character_is_a_422_not_a_500(client, source_headers, sync_engine):
    lead = make_lead(counterpart={"note": "a\u0000b"}, subject={"name": "王\u0000"})
    r = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["detail"]} == {"counterpart.note", "subject.name"}


async def test_concurrent_pushes_share_a_write_and_each_answer_follows_its_commit(client, source_headers,
                                                                                  sync_engine):
    leads = [make_lead() for _ in range(40)]
    answers = await asyncio.gather(*[client.post("/api/v1/leads", json=x, headers=source_headers) for x in leads])
    assert [a.status_code for a in answers] == [202] * 40
    with sync_engine.connect() as conn:
        stored = dict(conn.execute(select(Lead.source_id, Lead.id)).all())
        actors = set(conn.execute(select(LeadEvent.actor)).scalars())
    assert {x["source_id"]: a.json()["id"] for x, a in zip(leads, answers)} == stored
    assert actors == {"source:test-platform"}


async def test_a_group_write_that_fails_falls_back_to_one_lead_at_a_time(app, settings):
    """A row PostgreSQL refuses (here: not a time at all) fails alone, naming its field; its group
    mates are stored."""
    from dispatch.intake.repository import GroupWriter, Refused, lead_row

    writer = GroupWriter(app.state.intake_pool)
    good, bad = (validate_lead(make_lead()).lead for _ in range(2))
    bad_row = list(lead_row(bad, []))
    bad_row[2] = "not a time"  # pushed_at
    results = await asyncio.gather(writer.insert(lead_row(good, []), "test"), writer.insert(tuple(bad_row), "test"),
                                   return_exceptions=True)
    assert results[0][1] is True and isinstance(results[0][0], int)
    assert isinstance(results[1], Refused) and results[1].errors[0]["field"] == "pushed_at"


async def test_squad_members_see_their_own_leads_and_auxiliaries_no_id_number(client, source_headers, make_user,
                                                                               sync_engine):
    lead = make_lead(subject={"phone": "13912345678", "id_number": "370299198904085688"})
    lead_id = (await client.post("/api/v1/leads", json=lead, headers=source_headers)).json()["id"]
    with sync_engine.begin() as conn:  # the squad's own work (as an accepted offer makes it)
        conn.execute(text("UPDATE lead SET assigned_team = :t WHERE id = :i"), {"t": INSIDE["team"], "i": lead_id})
    police = make_user("police", team=INSIDE["team"])
    for role in ("auxiliary", "grid_worker"):  # not police: no ID number at all, in lists or in full
        who = make_user(role, team=INSIDE["team"])
        (item,) = (await client.get("/api/v1/leads", headers=who)).json()["items"]
        assert item["id"] == lead_id and item["subject"]["id_number"] is None and "****" in item["subject"]["phone"]
        full = (await client.get(f"/api/v1/leads/{lead_id}", headers=who)).json()
        assert full["subject"]["id_number"] is None and full["subject"]["phone"] == "13912345678"
    (item,) = (await client.get("/api/v1/leads", headers=police)).json()["items"]
    assert item["subject"]["id_number"] == "3702**********5688"
    full = (await client.get(f"/api/v1/leads/{lead_id}", headers=police)).json()
    assert full["subject"]["id_number"] == "370299198904085688"


async def test_an_address_only_lead_reads_back_in_its_documented_shape(client, source_headers, make_user):
    from dispatch.intake.schemas import LeadDetail

    lead = {**make_lead(), "location": {"kind": "address", "address": "滨海区海川路 17 号"}}
    r = await client.post("/api/v1/leads", json=lead, headers=source_headers)
    assert r.status_code == 202, r.text
    body = (await client.get(f"/api/v1/leads/{r.json()['id']}", headers=make_user("operator"))).json()
    assert body["location"] == {"lon": None, "lat": None, "crs": None, "accuracy_m": None, "kind": "address",
                                "address": "滨海区海川路 17 号"}
    assert LeadDetail.model_validate(body).location.address == "滨海区海川路 17 号"  # what a generated client reads
