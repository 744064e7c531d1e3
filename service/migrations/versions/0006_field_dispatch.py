"""field dispatch: team_member.username links a roster entry to its login

Revision ID: 0006
Revises: 0002
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('team_member', sa.Column('username', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.create_index(op.f('ix_team_member_username'), 'team_member', ['username'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_team_member_username'), table_name='team_member')
    op.drop_column('team_member', 'username')
