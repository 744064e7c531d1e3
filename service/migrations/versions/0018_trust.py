"""trust: tokens, API keys, sign-in limits

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    # source | gateway: the SMS gateway's key speaks for no source (it may not push leads)
    op.add_column("api_key", sa.Column("kind", sa.String(), server_default="source", nullable=False))


def downgrade() -> None:
    op.drop_column("api_key", "kind")
