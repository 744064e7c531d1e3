"""post-warning reviews (倒查), feedback to the sources, historic import

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "case_review",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("case_report_id", sa.BigInteger(), sa.ForeignKey("case_report.id", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("lead_id", sa.BigInteger(), sa.ForeignKey("lead.id", ondelete="SET NULL"), nullable=True),
        sa.Column("generated_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("matched_at", TS, server_default=sa.func.now(), nullable=False),
    )
    op.create_index("ix_case_review_lead_id", "case_review", ["lead_id"])
    op.create_table(
        "feedback_source",
        sa.Column("source", sa.String(), primary_key=True),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", TS, server_default=sa.func.now(), nullable=False),
    )
    op.create_table(
        "feedback_delivery",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), sa.ForeignKey("lead.id", ondelete="CASCADE"), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.SmallInteger(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("delivered_at", TS, nullable=True),
    )
    op.create_index("ix_feedback_delivery_lead_id", "feedback_delivery", ["lead_id"])
    op.create_index("ix_feedback_pending", "feedback_delivery", ["source", "id"],
                    postgresql_where=sa.text("status = 'pending'"))
    op.create_index("ix_feedback_dead", "feedback_delivery", ["id"], postgresql_where=sa.text("status = 'dead'"))


def downgrade() -> None:
    op.drop_table("feedback_delivery")
    op.drop_table("feedback_source")
    op.drop_table("case_review")
