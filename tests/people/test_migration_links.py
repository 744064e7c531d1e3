"""Migration 0015 links the leads already stored to persons, as the workers link new ones: by phone
and valid ID number, a lead carrying both joining them, leads still waiting for a worker left to it."""
from __future__ import annotations

import uuid

import psycopg
from sqlalchemy import create_engine, pool, text

from service.core.migrate import upgrade
from service.core.runtime import with_database
from service.core.settings import driver_url
from tests.factories import id_number

A, B = id_number(950_001), id_number(950_002)
LEADS = [  # (phone, id_number, status)
    ("13500000001", None, "tiered"),       # 1 ─┐ one person: 3 carries 1's phone and 2's ID number
    (None, A.lower(), "closed"),           # 2 ─┤
    ("13500000001", A, "working"),         # 3 ─┘
    ("13500000002", A[:-1] + ("1" if A[-1] != "1" else "2"), "tiered"),  # 4: a bad ID number links nothing
    ("13500000003", A[:-1] + ("1" if A[-1] != "1" else "2"), "transferred"),  # 5: another person
    ("13500000004", B, "received"),        # 6: not triaged yet: the worker links it
]


def test_stored_leads_are_linked_in_arrival_order(servers):
    admin = servers[0]
    name = f"quanzu_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(admin, name)
    engine = create_engine(driver_url(url, "psycopg"), poolclass=pool.NullPool)
    try:
        upgrade(url, "0014")
        with engine.begin() as conn:
            for i, (phone, idn, status) in enumerate(LEADS, 1):
                conn.execute(text(
                    "INSERT INTO lead (id, source, source_id, pushed_at, warning_type, fraud_type, risk_level, phone, "
                    "id_number, status, flags, ongoing, residency) OVERRIDING SYSTEM VALUE VALUES (:i, 'national_platform', :s, "
                    "now(), 'fraud_call', 'other', 2, :p, :n, :st, CAST(:f AS jsonb), false, 'unknown')"),
                    {"i": i, "s": f"M{i}", "p": phone, "n": idn, "st": status,
                     "f": '["id_number_invalid"]' if i in (4, 5) else "[]"})
        upgrade(url)
        with engine.connect() as conn:
            person = dict(conn.execute(text("SELECT id, person_id FROM lead")).all())
            idents = conn.execute(text("SELECT kind, value, person_id FROM person_identifier ORDER BY id")).all()
            persons = conn.execute(text("SELECT count(*) FROM person")).scalar()
            attempts = conn.execute(text("SELECT count(*) FROM information_schema.columns "
                                         "WHERE table_name = 'callback' AND column_name = 'attempt'")).scalar()
    finally:
        engine.dispose()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert person[1] == person[2] == person[3] is not None
    assert len({person[1], person[4], person[5]}) == 3 and person[6] is None
    assert persons == 3 and attempts == 1
    assert {(k, v) for k, v, p in idents if p == person[1]} == {("phone", "13500000001"), ("id_number", A)}
