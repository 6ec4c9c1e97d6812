"""user.session_epoch and login_throttle: sessions end on logout and password or power changes;
failed logins are throttled by client address instead of locking accounts

Revision ID: b7d41c2e9f03
Revises: efa2098142a3
Create Date: 2026-12-06 08:40:00

"""
from alembic import op
import sqlalchemy as sa

revision = 'b7d41c2e9f03'
down_revision = 'efa2098142a3'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('user') as batch:
        batch.add_column(sa.Column('session_epoch', sa.Integer(), server_default='0', nullable=False))
    op.create_table('login_throttle',
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('failures', sa.Integer(), nullable=False),
    sa.Column('blocked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_login_throttle'))
    )
    op.create_index(op.f('ix_login_throttle_updated_at'), 'login_throttle', ['updated_at'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_login_throttle_updated_at'), table_name='login_throttle')
    op.drop_table('login_throttle')
    with op.batch_alter_table('user') as batch:
        batch.drop_column('session_epoch')
