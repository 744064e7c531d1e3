"""Three workers triaging warnings about one person at the same moment: one person in the end, no lead
failed, no identifier owned twice — the identifiers' advisory locks and the person's row lock put them
one after the other."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from dispatch.models import Lead, Person, PersonIdentifier
from tests.factories import id_number
from tests.ladder.helpers import lead_of, push

pytestmark = pytest.mark.usefixtures("district", "clean")


@pytest.mark.parametrize("round_", range(3))
async def test_two_workers_one_person(round_, app, client, source_headers, sync_engine):
    from workers.tasks import process_leads

    phone, idn = f"1370000{round_:04d}", id_number(990_000 + round_)
    # the first knows only the phone, the second only the ID number, the third both: whatever order the
    # workers take them in, they end as one person
    subjects = [{"phone": phone, "id_number": None}, {"phone": None, "id_number": idn},
                {"phone": phone, "id_number": idn}]
    ids = [await push(client, source_headers, lead_of("P2", subject=s)) for s in subjects]
    await app.state.after_commit.drain()
    barrier = threading.Barrier(len(ids))
    errors = []

    def work(lead_id: int) -> None:
        try:
            barrier.wait(10)
            process_leads([lead_id])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with sync_engine.connect() as conn:
        rows = conn.execute(select(Lead.id, Lead.person_id, Lead.merged_into, Lead.status, Lead.attempts)
                            .where(Lead.id.in_(ids))).all()
        live = conn.execute(select(Person.id).where(Person.merged_into.is_(None))).scalars().all()
        owners = conn.execute(select(PersonIdentifier.person_id)).scalars().all()
    assert all(r.attempts == 0 and r.status != "received" for r in rows), rows
    assert len({r.person_id for r in rows}) == 1 and live == [rows[0].person_id] and set(owners) == set(live)
    # the phone-only and the ID-only lead, triaged before the third, were two people's work then
    assert 1 <= sum(r.merged_into is None for r in rows) <= 2
