"""persistent contact, the family (保护圈), stop-payment as work

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "family_contact",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("lead_id", sa.BigInteger(), sa.ForeignKey("lead.id", ondelete="CASCADE"), nullable=False),
        sa.Column("subject_phone", sa.String(), nullable=True),
        sa.Column("subject_id_number", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("relation", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=False),
        sa.Column("added_by", sa.String(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
    )
    for col in ("lead_id", "subject_phone", "subject_id_number"):
        op.create_index(f"ix_family_contact_{col}", "family_contact", [col])
    op.create_table(
        "stop_payment_request",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("lead_id", sa.BigInteger(), sa.ForeignKey("lead.id", ondelete="CASCADE"), nullable=False),
        sa.Column("seq", sa.SmallInteger(), nullable=False),
        sa.Column("bank", sa.String(), nullable=False),
        sa.Column("account", sa.String(), nullable=False),
        sa.Column("amount_cny", sa.Numeric(14, 2), nullable=True),
        sa.Column("requested_by", sa.String(), nullable=False),
        sa.Column("requested_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("answer_due_at", TS, nullable=False),
        sa.Column("status", sa.String(), server_default="requested", nullable=False),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("answered_by", sa.String(), nullable=True),
        sa.Column("saved_cny", sa.Numeric(14, 2), nullable=True),
        sa.Column("note", sa.String(), nullable=True),
    )
    op.create_index("ix_stop_payment_request_lead_id", "stop_payment_request", ["lead_id"])


def downgrade() -> None:
    op.drop_table("stop_payment_request")
    op.drop_table("family_contact")
