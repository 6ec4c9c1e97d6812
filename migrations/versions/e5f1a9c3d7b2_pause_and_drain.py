"""pause and drain: paused scopes (claims and the scheduler skip them), worker drain requests

Revision ID: e5f1a9c3d7b2
Revises: d5e2f8a1c904
Create Date: 2026-12-06 12:10:00

"""
from alembic import op
import sqlalchemy as sa

revision = 'e5f1a9c3d7b2'
down_revision = 'd5e2f8a1c904'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('pause',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=True),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], name=op.f('fk_pause_user_id_user'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pause')),
    sa.UniqueConstraint('scope', 'target_id', name='uq_pause_scope_target')
    )
    with op.batch_alter_table('worker') as batch:
        batch.add_column(sa.Column('drain_requested_at', sa.DateTime(timezone=True), nullable=True))


def downgrade():
    with op.batch_alter_table('worker') as batch:
        batch.drop_column('drain_requested_at')
    op.drop_table('pause')
