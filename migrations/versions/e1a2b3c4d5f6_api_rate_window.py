"""api rate window: per-token request counters shared by every portal worker and host

Revision ID: e1a2b3c4d5f6
Revises: d5e1f0a2b301
Create Date: 2026-12-06 12:20:00

"""
from alembic import op
import sqlalchemy as sa

revision = 'e1a2b3c4d5f6'
down_revision = 'd5e1f0a2b301'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'api_rate_window',
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('window', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('key', 'window', name=op.f('pk_api_rate_window')),
    )


def downgrade():
    op.drop_table('api_rate_window')
