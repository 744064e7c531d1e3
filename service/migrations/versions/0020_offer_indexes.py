"""offer indexes: a squad's members and its open assignments, read for every offer

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_app_user_team_code", "app_user", ["team_code"])
    op.create_index("ix_assignment_open_team", "assignment", ["team_code"],
                    postgresql_where=sa.text("status IN ('offered', 'accepted', 'arrived')"))


def downgrade() -> None:
    op.drop_index("ix_assignment_open_team", table_name="assignment")
    op.drop_index("ix_app_user_team_code", table_name="app_user")
