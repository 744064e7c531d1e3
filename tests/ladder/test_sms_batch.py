"""An SMS job's messages go out in one batch (dispatch.ladder.sms.deliver_many): locked in one statement,
their rows updated in one, the warnings' `sms` deadlines met in one — not four statements a message,
which was a third of an ordinary P3 lead's work in the worker. Each message keeps its own outcome:
sent, or skipped when it is not pending or another worker holds it; a deadline already missed only
learns when the SMS left after all."""
from __future__ import annotations

from sqlalchemy import event, text

from dispatch import flows
from dispatch.ladder.gateways import LoggingGateway
from dispatch.policy import load_policy
from service.core.db import sync_session
from service.core.settings import get_settings
from tests.factories import insert_tiered_lead


def _warned(conn, n: int, deadline: str) -> tuple[int, int]:
    """A lead with a pending warning SMS and its `sms` deadline in `deadline` state → (lead, message)."""
    lead_id = insert_tiered_lead(conn, f"sms-batch-{n}", warning_type="fraud_app", risk_level=3, tier="P3")
    conn.execute(text("INSERT INTO lead_deadline (lead_id, name, due_at, state) "
                      "VALUES (:l, 'sms', now() - interval '1 minute', :s)"), {"l": lead_id, "s": deadline})
    sms_id = conn.execute(text(
        "INSERT INTO sms_message (lead_id, purpose, to_phone, body, idempotency_key, status, attempts, flash) "
        "VALUES (:l, 'warning', :p, '【反诈提醒】', :k, 'pending', 0, false) RETURNING id"),
        {"l": lead_id, "p": f"1370000{n:04d}", "k": f"lead-{lead_id}-warning"}).scalar()
    return lead_id, sms_id


def test_an_sms_job_sends_its_batch_in_a_few_statements_and_each_message_keeps_its_outcome(sync_engine, district,
                                                                                          clean):
    with sync_engine.begin() as conn:
        leads, sms = zip(*[_warned(conn, n, "missed" if n == 1 else "pending") for n in range(6)])
        conn.execute(text("UPDATE sms_message SET status = 'sent' WHERE id = :m"), {"m": sms[2]})  # left already
    held = sync_engine.connect()  # another worker holds the fourth message
    held.execute(text("SELECT id FROM sms_message WHERE id = :m FOR UPDATE"), {"m": sms[3]})
    statements: list[str] = []
    listen = lambda conn, cursor, statement, *_: statements.append(" ".join(statement.split()))  # noqa: E731
    event.listen(sync_engine, "before_cursor_execute", listen)
    try:
        with sync_session(sync_engine) as s:
            results = flows.deliver_sms(s, list(sms), LoggingGateway(), load_policy(get_settings().policy_file), 3)
            s.commit()
    finally:
        event.remove(sync_engine, "before_cursor_execute", listen)
        held.rollback()
        held.close()
    assert results == ["sent", "sent", "skipped", "skipped", "sent", "sent"]
    assert len([x for x in statements if x.startswith("SELECT") and "FROM sms_message" in x]) == 1
    assert len([x for x in statements if x.startswith("UPDATE sms_message")]) == 1  # one executemany
    assert len([x for x in statements if x.startswith("UPDATE lead_deadline")]) == 2  # met; the missed one's time
    with sync_engine.connect() as conn:
        rows = {r.lead_id: r for r in conn.execute(text(
            "SELECT d.lead_id, d.state, d.met_at, m.status, m.sent_at FROM lead_deadline d "
            "JOIN sms_message m ON m.lead_id = d.lead_id WHERE d.lead_id = ANY(:l)"), {"l": list(leads)})}
        events = conn.execute(text("SELECT lead_id FROM lead_event WHERE kind = 'sms_sent' AND lead_id = ANY(:l) "
                                   "ORDER BY lead_id"), {"l": list(leads)}).scalars().all()
    sent = [leads[i] for i in (0, 1, 4, 5)]
    assert all(rows[x].status == "sent" and rows[x].met_at == rows[x].sent_at for x in sent)
    assert [rows[x].state for x in sent] == ["met", "missed", "met", "met"]  # missed stays missed, with its time
    assert (rows[leads[2]].state, rows[leads[3]].state) == ("pending", "pending")
    assert (rows[leads[3]].status, rows[leads[3]].met_at) == ("pending", None)  # held: not sent, not met
    assert events == sorted(sent)
