"""An offer nobody could get on a socket goes to each member by SMS (dispatch.field.offers.sms_fallback):
one per member, to their own roster phone, once, and one per phone. The squad's roster and the SMS
made before are read once for the whole squad, not per member: offers at night, phones off, are common."""
from __future__ import annotations

from collections import namedtuple
from datetime import UTC, datetime, timedelta

from sqlalchemy import event, select, text

from dispatch.field.offers import sms_fallback
from dispatch.field.squads import FieldConfig
from dispatch.models import Assignment, Lead, SmsMessage
from service.core.db import sync_session
from tests.factories import insert_tiered_lead

Member = namedtuple("Member", "username role team_code")  # a row of dispatch.field.squads.members


def _offer(conn, team: str, usernames: list[str]) -> tuple[int, int]:
    """A P0 lead offered to `team`, with a delivery row for each of `usernames` → (lead id, assignment id)."""
    now = datetime.now(UTC)
    lead_id = insert_tiered_lead(conn, "offer-sms")
    vid = conn.execute(text("INSERT INTO visit (lead_id, reason, requested_by, status, team_code) "
                            "VALUES (:l, 'policy', 'test', 'offered', :t) RETURNING id"), {"l": lead_id, "t": team}).scalar()
    aid = conn.execute(text("INSERT INTO assignment (visit_id, lead_id, team_code, attempt, status, offered_at, "
                            "expires_at) VALUES (:v, :l, :t, 1, 'offered', :now, :exp) RETURNING id"),
                       {"v": vid, "l": lead_id, "t": team, "now": now, "exp": now + timedelta(minutes=1)}).scalar()
    for u in usernames:
        conn.execute(text("INSERT INTO offer_delivery (assignment_id, username) VALUES (:a, :u)"), {"a": aid, "u": u})
    return lead_id, aid


def test_each_member_gets_one_sms_to_their_own_phone_and_the_roster_is_read_once(sync_engine, district, clean):
    with sync_engine.connect() as conn:
        team = conn.execute(text("SELECT code FROM team ORDER BY code LIMIT 1")).scalar()
        roster = conn.execute(text("SELECT role, phone FROM team_member WHERE team_code = :t ORDER BY id"),
                              {"t": team}).all()
    people = [Member(f"{role}-1", role, team) for role, _phone in roster]
    linked = people[0]._replace(username="linked-police")  # a second police login, linked to its own roster row
    shared = people[0]._replace(username="police-2")  # a third, unlinked: the first police entry's phone, as police-1
    with sync_engine.begin() as conn:
        conn.execute(text("INSERT INTO team_member (team_code, role, name, phone, username) "
                          "VALUES (:t, 'police', '王警官', '13700001111', :u)"), {"t": team, "u": linked.username})
        lead_id, aid = _offer(conn, team, [p.username for p in (*people, linked, shared)])
    statements: list[str] = []
    listen = lambda conn, cursor, statement, *_: statements.append(statement)  # noqa: E731
    event.listen(sync_engine, "before_cursor_execute", listen)
    try:
        with sync_session(sync_engine) as s:
            a, lead = s.get(Assignment, aid), s.get(Lead, lead_id)
            assert sms_fallback(s, a, lead, FieldConfig(), [*people, linked, shared], "no_live_socket") == len(people) + 2
            s.commit()
        roster_reads = [x for x in statements if "FROM team_member" in x]
        made_reads = [x for x in statements if x.lstrip().startswith("SELECT") and "FROM sms_message" in x]
        assert len(roster_reads) == 1 and len(made_reads) == 1  # for five members, not five of each
        with sync_session(sync_engine) as s:  # once: every member's delivery now says it was sent
            assert sms_fallback(s, s.get(Assignment, aid), s.get(Lead, lead_id), FieldConfig(), people,
                                "no_ack") == 0
        with sync_session(sync_engine) as s:
            sms = dict(s.execute(select(SmsMessage.idempotency_key, SmsMessage.to_phone)
                                 .where(SmsMessage.assignment_id == aid)).all())
            unsent = s.execute(text("SELECT count(*) FROM offer_delivery WHERE assignment_id = :a AND sms_at IS NULL"),
                               {"a": aid}).scalar()
    finally:
        event.remove(sync_engine, "before_cursor_execute", listen)
        with sync_engine.begin() as conn:  # the district is shared by the session's tests: its roster as it was
            conn.execute(text("DELETE FROM team_member WHERE username = :u"), {"u": linked.username})
            for table in ("sms_message", "offer_delivery"):
                conn.execute(text(f"DELETE FROM {table} WHERE assignment_id = :a"), {"a": aid})
            for table in ("assignment", "visit", "lead_event"):
                conn.execute(text(f"DELETE FROM {table} WHERE lead_id = :l"), {"l": lead_id})
            conn.execute(text("DELETE FROM lead WHERE id = :l"), {"l": lead_id})
    # each to the phone of their role's roster entry; the linked login to the row that names it; police-2
    # shares police-1's phone, which gets one SMS, and is counted as reached (no SMS of its own later)
    assert sms == {**{f"offer:{aid}:{p.username}": phone for p, (_r, phone) in zip(people, roster)},
                   f"offer:{aid}:{linked.username}": "13700001111"}
    assert unsent == 0


def test_a_shared_phone_is_texted_as_the_login_its_roster_entry_names_and_its_reply_answers_as_them(
        sync_engine, district, clean):
    """Two police logins of one squad: `police-z` named by the first police roster entry, `police-a` (an
    older account, sorted first) on no entry of its own, so on the same phone by role. The one SMS that
    phone gets is keyed to `police-z`, and a `1` from it accepts as `police-z`, not as the older account."""
    from dispatch.ladder.replies import OfferReply, match_reply

    with sync_engine.begin() as conn:
        team = conn.execute(text("SELECT code FROM team ORDER BY code LIMIT 1")).scalar()
        entry, phone, was = conn.execute(text(
            "SELECT id, phone, username FROM team_member WHERE team_code = :t AND role = 'police' ORDER BY id LIMIT 1"),
            {"t": team}).one()
        conn.execute(text("UPDATE team_member SET username = 'police-z' WHERE id = :e"), {"e": entry})
        conn.execute(text("INSERT INTO app_user (username, password_hash, role, team_code, active) "
                          "VALUES ('police-a', 'x', 'police', :t, true), ('police-z', 'x', 'police', :t, true)"),
                     {"t": team})
        lead_id, aid = _offer(conn, team, ["police-a", "police-z"])
    people = [Member("police-a", "police", team), Member("police-z", "police", team)]
    try:
        with sync_session(sync_engine) as s:
            assert sms_fallback(s, s.get(Assignment, aid), s.get(Lead, lead_id), FieldConfig(), people,
                                "no_live_socket") == 2  # both reached: one SMS, on their one phone
            s.commit()
        with sync_session(sync_engine) as s:
            sms = dict(s.execute(select(SmsMessage.idempotency_key, SmsMessage.to_phone)
                                 .where(SmsMessage.assignment_id == aid)).all())
            reply = match_reply(s, phone, "1")
    finally:
        with sync_engine.begin() as conn:  # the district is shared by the session's tests: as it was
            conn.execute(text("UPDATE team_member SET username = :u WHERE id = :e"), {"u": was, "e": entry})
            for table in ("sms_message", "offer_delivery"):
                conn.execute(text(f"DELETE FROM {table} WHERE assignment_id = :a"), {"a": aid})
            for table in ("assignment", "visit", "lead_event"):
                conn.execute(text(f"DELETE FROM {table} WHERE lead_id = :l"), {"l": lead_id})
            conn.execute(text("DELETE FROM lead WHERE id = :l"), {"l": lead_id})
            conn.execute(text("DELETE FROM app_user WHERE username IN ('police-a', 'police-z')"))
    assert sms == {f"offer:{aid}:police-z": phone}
    assert isinstance(reply, OfferReply) and (reply.assignment_id, reply.member.name) == (aid, "police-z")
