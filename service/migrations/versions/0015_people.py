"""person records, one piece of work per warning, honest callbacks

Revision ID: 0015
Revises: 0014

The person tables (`person`, `person_identifier`, `person_split`), `lead.person_id` pointing at
them, and `callback.attempt` (a callback not reached is tried again). Leads tiered before this
revision are linked here, in the order they arrived, as the workers link new ones
(dispatch/outcomes/linking.py): by phone and by ID number, a lead carrying both joining the two.
"""
import re

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_ID = re.compile(r"\d{17}[\dX]|\d{15}", re.ASCII)
_BATCH = 10_000


def upgrade() -> None:
    op.create_table(
        "person",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("merged_into", sa.BigInteger(), sa.ForeignKey("person.id"), nullable=True),
        sa.Column("merged_at", TS, nullable=True))
    op.create_table(
        "person_identifier",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("person_id", sa.BigInteger(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("kind", "value", name="uq_person_identifier"))
    op.create_index("ix_person_identifier_person_id", "person_identifier", ["person_id"])
    op.create_table(
        "person_split",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("person_id", sa.BigInteger(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("new_person_id", sa.BigInteger(), sa.ForeignKey("person.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("kept", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("lead_ids", postgresql.JSONB(), server_default="[]", nullable=False))
    for col in ("person_id", "new_person_id", "value"):
        op.create_index(f"ix_person_split_{col}", "person_split", [col])
    op.create_foreign_key("lead_person_id_fkey", "lead", "person", ["person_id"], ["id"])
    op.add_column("callback", sa.Column("attempt", sa.SmallInteger(), server_default="1", nullable=False))
    _link_existing_leads(op.get_bind())


def _link_existing_leads(conn) -> None:
    """Every lead already tiered gets its person: identifiers joined in arrival order (union-find)."""
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def find(k):
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    first: dict[tuple[str, str], int] = {}  # identifier → the lead that brought it
    leads: list[tuple[int, tuple[str, str]]] = []
    rows = conn.execute(sa.text(
        "SELECT id, phone, upper(id_number) AS idn, flags ? 'id_number_invalid' AS bad FROM lead "
        "WHERE status <> 'received' ORDER BY id"))
    for lead_id, phone, idn, bad in rows:
        keys = ([("phone", phone)] if phone else []) + ([("id_number", idn)] if idn and not bad and
                                                        _ID.fullmatch(idn) else [])
        if not keys:
            continue
        for k in keys:
            if k not in parent:
                parent[k], first[k] = k, lead_id
        if len(keys) == 2:
            a, b = find(keys[0]), find(keys[1])
            if a != b:
                parent[b] = a
        leads.append((lead_id, keys[0]))
    if not leads:
        return
    roots = sorted({find(k) for k in parent}, key=lambda k: first[k])
    ids = conn.execute(sa.text("INSERT INTO person (created_at) SELECT now() FROM generate_series(1, :n) "
                               "RETURNING id"), {"n": len(roots)}).scalars().all()
    person_of = dict(zip(roots, sorted(ids)))
    idents = [{"p": person_of[find(k)], "kind": k[0], "value": k[1], "lead": first[k]} for k in parent]
    for i in range(0, len(idents), _BATCH):
        conn.execute(sa.text("INSERT INTO person_identifier (person_id, kind, value, lead_id) "
                             "VALUES (:p, :kind, :value, :lead)"), idents[i:i + _BATCH])
    for i in range(0, len(leads), _BATCH):
        chunk = leads[i:i + _BATCH]
        conn.execute(sa.text("UPDATE lead SET person_id = v.p FROM unnest(CAST(:ids AS bigint[]), "
                             "CAST(:ps AS bigint[])) AS v(id, p) WHERE lead.id = v.id"),
                     {"ids": [lead_id for lead_id, _k in chunk], "ps": [person_of[find(k)] for _l, k in chunk]})


def downgrade() -> None:
    op.drop_column("callback", "attempt")
    op.drop_constraint("lead_person_id_fkey", "lead", type_="foreignkey")
    op.execute("UPDATE lead SET person_id = NULL")
    op.drop_table("person_split")
    op.drop_table("person_identifier")
    op.drop_table("person")
