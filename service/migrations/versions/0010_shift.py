"""the shift: alarms, the desk's call claims, offline field actions (phone time, receipt time,
check-ins) and Idempotency-Key answers

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("lead", sa.Column("claimed_by", sa.String(), nullable=True))
    op.add_column("lead", sa.Column("claimed_until", TS, nullable=True))
    for name in ("arrived_received_at", "completed_received_at", "checkin_at", "checkin_due_at"):
        op.add_column("assignment", sa.Column(name, TS, nullable=True))
    op.create_table(
        "alarm",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("lead_id", sa.BigInteger(), sa.ForeignKey("lead.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("tier", sa.String(), nullable=True),
        sa.Column("deadline_id", sa.BigInteger(), nullable=True),
        sa.Column("assignment_id", sa.BigInteger(), nullable=True),
        sa.Column("team_code", sa.String(), nullable=True),
        sa.Column("due_at", TS, nullable=True),
        sa.Column("raised_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("level", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("escalate_at", TS, nullable=True),
        sa.Column("acked_at", TS, nullable=True),
        sa.Column("acked_by", sa.String(), nullable=True),
        sa.Column("resolved_at", TS, nullable=True),
        sa.Column("data", postgresql.JSONB(), server_default="{}", nullable=False),
    )
    op.create_index("ix_alarm_lead_id", "alarm", ["lead_id"])
    op.create_index("ix_alarm_active", "alarm", ["escalate_at"],
                    postgresql_where=sa.text("acked_at IS NULL AND resolved_at IS NULL"))
    op.create_table(
        "idempotent_request",
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("method", sa.String(), nullable=False),
        sa.Column("path", sa.String(), nullable=False),
        sa.Column("status_code", sa.SmallInteger(), nullable=False),
        sa.Column("body", postgresql.JSONB(), nullable=True),
        sa.Column("created_at", TS, server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("actor", "key"),
    )


def downgrade() -> None:
    op.drop_table("idempotent_request")
    op.drop_index("ix_alarm_active", table_name="alarm")
    op.drop_index("ix_alarm_lead_id", table_name="alarm")
    op.drop_table("alarm")
    for name in ("arrived_received_at", "completed_received_at", "checkin_at", "checkin_due_at"):
        op.drop_column("assignment", name)
    op.drop_column("lead", "claimed_until")
    op.drop_column("lead", "claimed_by")
