"""response ladder: lead.needs_call (the operator call queue)

Revision ID: 0005
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('lead', sa.Column('needs_call', sa.Boolean(), server_default='false', nullable=False))
    op.create_index('ix_lead_needs_call', 'lead', ['id'], unique=False, postgresql_where=sa.text('needs_call'))


def downgrade() -> None:
    op.drop_index('ix_lead_needs_call', table_name='lead', postgresql_where=sa.text('needs_call'))
    op.drop_column('lead', 'needs_call')
