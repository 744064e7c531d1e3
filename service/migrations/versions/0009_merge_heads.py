"""one history again: the audit chain and geocoder (0004), the call queue (0005) and field dispatch
(0006) were built side by side on 0002

Revision ID: 0009
Revises: 0004, 0005, 0006
"""
revision = "0009"
down_revision = ("0004", "0005", "0006")
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
