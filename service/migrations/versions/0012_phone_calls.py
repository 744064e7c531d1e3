"""phone calls: SIP dialling (baresip) and robot call results

`call_attempt` says how its result came (channel: operator | sip | robot), with the SIP status,
the seconds connected, a robot's labels and its own call id (a resent result is recorded once);
`dial` is a desk's request to its SIP line and what the phone network answered.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
OPEN = sa.text("state IN ('queued', 'dialling')")


def upgrade() -> None:
    op.add_column("call_attempt", sa.Column("channel", sa.String(), server_default="operator", nullable=False))
    op.add_column("call_attempt", sa.Column("duration_s", sa.Integer(), nullable=True))
    op.add_column("call_attempt", sa.Column("sip_status", sa.SmallInteger(), nullable=True))
    op.add_column("call_attempt", sa.Column("tags", postgresql.JSONB(), nullable=True))
    op.add_column("call_attempt", sa.Column("external_id", sa.String(), nullable=True))
    op.create_index("uq_call_external", "call_attempt", ["actor", "external_id"], unique=True,
                    postgresql_where=sa.text("external_id IS NOT NULL"))
    op.create_table(
        "dial",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("lead_id", sa.BigInteger(), sa.ForeignKey("lead.id", ondelete="CASCADE"), nullable=False),
        sa.Column("line", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("actor_role", sa.String(), nullable=False),
        sa.Column("state", sa.String(), server_default="queued", nullable=False),
        sa.Column("requested_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("sip_status", sa.SmallInteger(), nullable=True),
        sa.Column("sip_reason", sa.String(), nullable=True),
        sa.Column("result", sa.String(), nullable=True),
        sa.Column("call_id", sa.BigInteger(), sa.ForeignKey("call_attempt.id", ondelete="SET NULL"), nullable=True),
        sa.Column("sends", sa.SmallInteger(), server_default="1", nullable=False),
        sa.Column("error", sa.String(), nullable=True),
    )
    op.create_index("ix_dial_lead_id", "dial", ["lead_id"])
    # A line carries one call at a time, and a lead is dialled once at a time; the sweep scans only these.
    op.create_index("uq_dial_open_line", "dial", ["line"], unique=True, postgresql_where=OPEN)
    op.create_index("uq_dial_open_lead", "dial", ["lead_id"], unique=True, postgresql_where=OPEN)


def downgrade() -> None:
    op.drop_table("dial")
    op.drop_index("uq_call_external", table_name="call_attempt")
    for name in ("external_id", "tags", "sip_status", "duration_s", "channel"):
        op.drop_column("call_attempt", name)
