"""a city of districts: transfers that are handed over

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lead_transfer",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("lead_id", sa.BigInteger(), sa.ForeignKey("lead.id", ondelete="CASCADE"), nullable=False),
        sa.Column("from_district", sa.String(), nullable=True),
        sa.Column("to_district", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("requested_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("reviewed_by", sa.String(), nullable=True),
        sa.Column("reviewed_at", TS, nullable=True),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("answered_by", sa.String(), nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("answer_reason", sa.String(), nullable=True),
    )
    op.create_index("ix_lead_transfer_lead_id", "lead_transfer", ["lead_id"])
    op.create_index("uq_lead_transfer_open", "lead_transfer", ["lead_id"], unique=True,
                    postgresql_where=sa.text("state IN ('review', 'pending')"))
    op.create_index("ix_lead_transfer_to", "lead_transfer", ["to_district", "state"])
    op.create_index("ix_lead_transfer_from", "lead_transfer", ["from_district", "state"])
    op.create_index("ix_lead_transfer_due", "lead_transfer", ["due_at"], postgresql_where=sa.text("state = 'pending'"))


def downgrade() -> None:
    op.drop_table("lead_transfer")
