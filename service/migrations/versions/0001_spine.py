"""the spine: leads, audit, district, squads, auth

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 07:53:24.607954
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('access_log',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('lead_id', sa.BigInteger(), nullable=False),
    sa.Column('what', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_access_log_lead_id'), 'access_log', ['lead_id'], unique=False)
    op.create_table('api_key',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    sa.UniqueConstraint('name')
    )
    op.create_table('district',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('geometry', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('lead',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('warning_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('fraud_type', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('fraud_type_raw', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('risk_level', sa.SmallInteger(), nullable=False),
    sa.Column('ongoing', sa.Boolean(), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('id_number', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('residency', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('counterpart', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('amount_cny', sa.Numeric(precision=14, scale=2), nullable=True),
    sa.Column('loc_lon', sa.Float(), nullable=True),
    sa.Column('loc_lat', sa.Float(), nullable=True),
    sa.Column('loc_crs', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('loc_accuracy_m', sa.Float(), nullable=True),
    sa.Column('loc_kind', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('beat_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('street_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('in_jurisdiction', sa.Boolean(), nullable=True),
    sa.Column('placed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('flags', postgresql.JSONB(astext_type=sa.Text()), server_default='[]', nullable=False),
    sa.Column('status', sa.String(), server_default='received', nullable=False),
    sa.Column('tier', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('tier_detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('assigned_team', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('transfer_to', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('transfer_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('signed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('signed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('outcome', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'source_id', name='uq_lead_source')
    )
    op.create_index(op.f('ix_lead_assigned_team'), 'lead', ['assigned_team'], unique=False)
    op.create_index(op.f('ix_lead_beat_code'), 'lead', ['beat_code'], unique=False)
    op.create_index(op.f('ix_lead_id_number'), 'lead', ['id_number'], unique=False)
    op.create_index(op.f('ix_lead_phone'), 'lead', ['phone'], unique=False)
    op.create_index('ix_lead_received', 'lead', ['received_at'], unique=False, postgresql_where=sa.text("status = 'received'"))
    op.create_index('ix_lead_status_tier', 'lead', ['status', 'tier'], unique=False)
    op.create_index(op.f('ix_lead_street_code'), 'lead', ['street_code'], unique=False)
    op.create_table('rejection',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('source_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('errors', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_rejection_at', 'rejection', ['at'], unique=False)
    op.create_table('street',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('geometry', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('lead_event',
    sa.Column('id', sa.BigInteger(), sa.Identity(always=False), nullable=False),
    sa.Column('lead_id', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('data', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['lead_id'], ['lead.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_lead_event_lead', 'lead_event', ['lead_id', 'id'], unique=False)
    op.create_table('station',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('street_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['street_code'], ['street.code'], ),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_index(op.f('ix_station_street_code'), 'station', ['street_code'], unique=False)
    op.create_table('beat',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('street_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('station_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('geometry', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['station_code'], ['station.code'], ),
    sa.ForeignKeyConstraint(['street_code'], ['street.code'], ),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_index(op.f('ix_beat_street_code'), 'beat', ['street_code'], unique=False)
    op.create_table('team',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('beat_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('home_lon', sa.Float(), nullable=True),
    sa.Column('home_lat', sa.Float(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('last_lon', sa.Float(), nullable=True),
    sa.Column('last_lat', sa.Float(), nullable=True),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['beat_code'], ['beat.code'], ),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_index(op.f('ix_team_beat_code'), 'team', ['beat_code'], unique=False)
    op.create_table('app_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('team_code', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['team_code'], ['team.code'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('team_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('team_code', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('badge_no', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.ForeignKeyConstraint(['team_code'], ['team.code'], ),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_team_member_team_code'), 'team_member', ['team_code'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_team_member_team_code'), table_name='team_member')
    op.drop_table('team_member')
    op.drop_table('app_user')
    op.drop_index(op.f('ix_team_beat_code'), table_name='team')
    op.drop_table('team')
    op.drop_index(op.f('ix_beat_street_code'), table_name='beat')
    op.drop_table('beat')
    op.drop_index(op.f('ix_station_street_code'), table_name='station')
    op.drop_table('station')
    op.drop_index('ix_lead_event_lead', table_name='lead_event')
    op.drop_table('lead_event')
    op.drop_table('street')
    op.drop_index('ix_rejection_at', table_name='rejection')
    op.drop_table('rejection')
    op.drop_index(op.f('ix_lead_street_code'), table_name='lead')
    op.drop_index('ix_lead_status_tier', table_name='lead')
    op.drop_index('ix_lead_received', table_name='lead', postgresql_where=sa.text("status = 'received'"))
    op.drop_index(op.f('ix_lead_phone'), table_name='lead')
    op.drop_index(op.f('ix_lead_id_number'), table_name='lead')
    op.drop_index(op.f('ix_lead_beat_code'), table_name='lead')
    op.drop_index(op.f('ix_lead_assigned_team'), table_name='lead')
    op.drop_table('lead')
    op.drop_table('district')
    op.drop_table('api_key')
    op.drop_index(op.f('ix_access_log_lead_id'), table_name='access_log')
    op.drop_table('access_log')
