"""the columns the person, the city and trust build on

Revision ID: 0014
Revises: 0013
"""
import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
_DISTRICT_OF = ("street", "station", "beat", "team", "app_user", "api_key")


def upgrade() -> None:
    op.add_column("lead", sa.Column("person_id", sa.BigInteger(), nullable=True))
    op.add_column("lead", sa.Column("merged_into", sa.BigInteger(), sa.ForeignKey("lead.id"), nullable=True))
    op.add_column("lead", sa.Column("district_code", sa.String(), nullable=True))
    op.add_column("lead", sa.Column("historic", sa.Boolean(), server_default="false", nullable=False))
    for col in ("person_id", "merged_into", "district_code"):
        op.create_index(f"ix_lead_{col}", "lead", [col])
    for table in _DISTRICT_OF:
        op.add_column(table, sa.Column("district_code", sa.String(), nullable=True))
        if table not in ("app_user", "api_key"):
            op.create_index(f"ix_{table}_district_code", table, ["district_code"])
    # Rows from before: the one district there was owns them.
    for table in ("street", "station", "beat", "team", "lead"):
        op.execute(f"UPDATE {table} SET district_code = (SELECT min(code) FROM district) WHERE district_code IS NULL"
                   + (" AND status <> 'transferred'" if table == "lead" else ""))
    op.add_column("app_user", sa.Column("token_version", sa.Integer(), server_default="0", nullable=False))
    op.add_column("api_key", sa.Column("sources", sa.dialects.postgresql.JSONB(), nullable=True))
    op.add_column("api_key", sa.Column("last_used_at", TS, nullable=True))


def downgrade() -> None:
    op.drop_column("api_key", "last_used_at")
    op.drop_column("api_key", "sources")
    op.drop_column("app_user", "token_version")
    for table in _DISTRICT_OF:
        op.drop_column(table, "district_code")
    for col in ("historic", "district_code", "merged_into", "person_id"):
        op.drop_column("lead", col)
