"""upstream_map: upstream MultiFlexi row -> our row, so `multiflexi upstream import` is idempotent

Revision ID: d5e1f0a2b301
Revises: d4e8a1f2b6c3
Create Date: 2026-12-06 11:30:00

"""
from alembic import op
import sqlalchemy as sa

revision = 'd5e1f0a2b301'
down_revision = 'd4e8a1f2b6c3'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('upstream_map',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=64), nullable=False),
    sa.Column('upstream_id', sa.String(length=64), nullable=False),
    sa.Column('upstream_uuid', sa.String(length=64), nullable=True),
    sa.Column('our_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=255), nullable=False),
    sa.Column('imported_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_upstream_map')),
    sa.UniqueConstraint('kind', 'upstream_id', name=op.f('uq_upstream_map_kind_upstream_id'))
    )


def downgrade():
    op.drop_table('upstream_map')
