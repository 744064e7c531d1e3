"""audit chain seals (lead_event, access_log, audit_head); address-only leads and the geocode cache

Revision ID: 0004
Revises: 0002
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None

SEALED = ('lead_event', 'access_log')


def upgrade() -> None:
    for table in SEALED:
        op.add_column(table, sa.Column('seal_seq', sa.BigInteger(), nullable=True))
        op.add_column(table, sa.Column('seal', sa.LargeBinary(), nullable=True))
        op.create_index(f'uq_{table}_seal_seq', table, ['seal_seq'], unique=True,
                        postgresql_where=sa.text('seal_seq IS NOT NULL'))
        op.create_index(f'ix_{table}_unsealed', table, ['id'], unique=False,
                        postgresql_where=sa.text('seal_seq IS NULL'))
    op.create_table('audit_head',
    sa.Column('tbl', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('position', sa.BigInteger(), nullable=False),
    sa.Column('seal', sa.LargeBinary(), nullable=False),
    sa.Column('sealed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('tbl')
    )
    op.create_table('geocode_cache',
    sa.Column('provider', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('found', sa.Boolean(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'address')
    )
    op.add_column('lead', sa.Column('loc_address', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    op.add_column('lead', sa.Column('placement_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    op.drop_column('lead', 'placement_reason')
    op.drop_column('lead', 'loc_address')
    op.drop_table('geocode_cache')
    op.drop_table('audit_head')
    for table in SEALED:
        op.drop_index(f'ix_{table}_unsealed', table_name=table, postgresql_where=sa.text('seal_seq IS NULL'))
        op.drop_index(f'uq_{table}_seal_seq', table_name=table, postgresql_where=sa.text('seal_seq IS NOT NULL'))
        op.drop_column(table, 'seal')
        op.drop_column(table, 'seal_seq')
