"""SMS channels: Kannel, Aliyun, replies (MO), flash SMS

`sms_message` gets `flash` (闪信, class 0), `gateway_status` (the gateway's last word: Kannel's DLR
code, Aliyun's SendStatus) and `params` (a template's parameters, for Aliyun); an index on the
phone (a reply is matched to the newest SMS to its sender) and on the messages sent and not final
(the Aliyun receipt sweep). `sms_inbound` keeps every reply and what it became.

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("sms_message", sa.Column("flash", sa.Boolean(), server_default=sa.text("false"), nullable=False))
    op.add_column("sms_message", sa.Column("gateway_status", sa.String(), nullable=True))
    op.add_column("sms_message", sa.Column("params", postgresql.JSONB(), nullable=True))
    op.create_index("ix_sms_message_to_phone", "sms_message", ["to_phone"])
    op.create_index("ix_sms_message_unfinished", "sms_message", ["sent_at"],
                    postgresql_where=sa.text("status = 'sent'"))
    op.create_table(
        "sms_inbound",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("received_at", TS, server_default=sa.func.now(), nullable=False),
        sa.Column("from_phone", sa.String(), nullable=False),
        sa.Column("to_number", sa.String(), nullable=True),
        sa.Column("text", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("sms_message_id", sa.BigInteger(), nullable=True),
        sa.Column("lead_id", sa.BigInteger(), sa.ForeignKey("lead.id", ondelete="CASCADE"), nullable=True),
        sa.Column("assignment_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.String(), nullable=True),
    )
    op.create_index("ix_sms_inbound_from_phone", "sms_inbound", ["from_phone"])
    op.create_index("ix_sms_inbound_lead_id", "sms_inbound", ["lead_id"])


def downgrade() -> None:
    op.drop_table("sms_inbound")
    op.drop_index("ix_sms_message_unfinished", table_name="sms_message")
    op.drop_index("ix_sms_message_to_phone", table_name="sms_message")
    for name in ("params", "gateway_status", "flash"):
        op.drop_column("sms_message", name)
