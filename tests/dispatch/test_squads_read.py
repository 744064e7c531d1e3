"""The squads as matching reads them from PostgreSQL (dispatch.field.squads.load_squads): each squad's
open assignments (offered, accepted, arrived — not declined, expired or completed ones), and which
squads a lead of a district may get. The workload limit stands on that count."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from dispatch.field.matching import choose_squad
from dispatch.field.squads import FieldConfig, adjacency, load_squads
from service.core.db import sync_session
from tests.factories import insert_tiered_lead


def _assign(conn, team: str, statuses: list[str]) -> None:
    """An assignment of `team` in each of `statuses`, each of its own lead and visit."""
    now = datetime.now(UTC)
    for status in statuses:
        lead_id = insert_tiered_lead(conn, f"squads-{team}-{status}", tier=None)
        vid = conn.execute(text("INSERT INTO visit (lead_id, reason, requested_by, status, team_code) "
                                "VALUES (:l, 'policy', 'test', 'assigned', :t) RETURNING id"),
                           {"l": lead_id, "t": team}).scalar()
        conn.execute(text("INSERT INTO assignment (visit_id, lead_id, team_code, attempt, status, offered_at, "
                          "expires_at) VALUES (:v, :l, :t, 1, :s, :at, :at)"),
                     {"v": vid, "l": lead_id, "t": team, "s": status, "at": now + timedelta(minutes=1)})


def test_open_assignments_are_counted_per_squad_and_the_busiest_is_passed_over(sync_engine, district, clean):
    with sync_engine.begin() as conn:
        teams = conn.execute(text("SELECT code, beat_code, district_code FROM team ORDER BY code")).all()
        kept = conn.execute(text("SELECT code, status, last_lon, last_lat, last_at FROM team")).all()
        conn.execute(text("UPDATE team SET status = 'on_duty', last_lon = home_lon, last_lat = home_lat, "
                          "last_at = now()"))
    (busy, beat, code_of_district), (other, _b, _d) = teams[0], teams[1]
    try:
        with sync_engine.begin() as conn:
            _assign(conn, busy, ["offered", "accepted", "arrived", "declined", "expired", "completed"])
            _assign(conn, other, ["completed", "declined"])
        cfg = FieldConfig(workload_limit=3)
        with sync_session(sync_engine) as s:
            squads = {q.code: q for q in load_squads(s, cfg)}
            assert squads[busy].open_assignments == 3  # the three open ones, not the six it ever had
            assert squads[other].open_assignments == 0
            assert all(q.open_assignments == 0 for c, q in squads.items() if c != busy)
            assert len(squads) == len(teams)
            # Squads by code, and a district's squads (its own and the city's): the same counts.
            assert [q.open_assignments for q in load_squads(s, cfg, [busy, other])] == [3, 0]
            of_district = load_squads(s, cfg, district=code_of_district)
            assert {q.code for q in of_district} == {c for c, _b, d in teams if d in (code_of_district, None)}
            assert load_squads(s, cfg, district="no-such-district") == []
            assert load_squads(s, cfg, [busy], district="no-such-district") == []
            # A lead in the busy squad's own beat goes to another: it is at its workload limit.
            lon, lat = s.execute(text("SELECT home_lon, home_lat FROM team WHERE code = :c"), {"c": busy}).one()
            choice = choose_squad(beat, lon, lat, of_district, adjacency(s), limit=cfg.workload_limit)
            assert choice.team_code not in (None, busy)
            assert choose_squad(beat, lon, lat, of_district, adjacency(s), limit=4).team_code == busy
    finally:
        with sync_engine.begin() as conn:
            ours = "SELECT id FROM lead WHERE source = 'test' AND source_id LIKE 'squads-%'"
            conn.execute(text(f"DELETE FROM assignment WHERE lead_id IN ({ours})"))
            conn.execute(text(f"DELETE FROM visit WHERE lead_id IN ({ours})"))
            conn.execute(text(f"DELETE FROM lead WHERE id IN ({ours})"))
            for code, status, lon, lat, at in kept:
                conn.execute(text("UPDATE team SET status = :s, last_lon = :lon, last_lat = :lat, last_at = :at "
                                  "WHERE code = :c"), {"s": status, "lon": lon, "lat": lat, "at": at, "c": code})
