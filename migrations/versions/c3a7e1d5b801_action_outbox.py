"""Post-job actions: outbox and lease columns on action_run, triggers on action_config,
chain depth on job

Additive: existing action configs fire always on failed, timed_out and lost (as before).

Revision ID: c3a7e1d5b801
Revises: c3a91f0d7e21
Create Date: 2026-12-06 09:30:00

"""
from alembic import op
import sqlalchemy as sa

from multiflexi_web.models import config_epoch

revision = 'c3a7e1d5b801'
down_revision = 'c3a91f0d7e21'
branch_labels = None
depends_on = None

_ACTION_CONFIG = {"action_config": None}


def upgrade():
    with op.batch_alter_table('action_config') as batch:
        batch.add_column(sa.Column('on_timed_out', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column('on_lost', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch.add_column(sa.Column('on_cancelled', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column('trigger', sa.String(length=16), nullable=False, server_default='always'))
        batch.add_column(sa.Column('after_failures', sa.Integer(), nullable=False, server_default='1'))
    with op.batch_alter_table('action_run') as batch:
        batch.add_column(sa.Column('config_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('idempotency_key', sa.String(length=96), nullable=True))
        batch.add_column(sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('owner_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(
            'fk_action_run_config_id_action_config', 'action_config', ['config_id'], ['id'],
            ondelete='SET NULL',
        )
        batch.create_unique_constraint('uq_action_run_idempotency_key', ['idempotency_key'])
        batch.create_index('ix_action_run_due', ['status', 'next_attempt_at'])
    with op.batch_alter_table('job') as batch:
        batch.add_column(sa.Column('chain_depth', sa.Integer(), nullable=False, server_default='0'))
    # The executor caches whether a template has actions: changes to them bump the epoch.
    dialect = op.get_bind().dialect.name
    for statement in config_epoch.create_sql(dialect, _ACTION_CONFIG)[1 if dialect == 'postgresql' else 0:]:
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    for statement in config_epoch.drop_sql(dialect, _ACTION_CONFIG):
        if not statement.startswith('DROP FUNCTION'):
            op.execute(statement)
    with op.batch_alter_table('job') as batch:
        batch.drop_column('chain_depth')
    with op.batch_alter_table('action_run') as batch:
        batch.drop_index('ix_action_run_due')
        batch.drop_constraint('uq_action_run_idempotency_key', type_='unique')
        batch.drop_constraint('fk_action_run_config_id_action_config', type_='foreignkey')
        for col in ('owner_id', 'claimed_at', 'next_attempt_at', 'idempotency_key', 'config_id'):
            batch.drop_column(col)
    with op.batch_alter_table('action_config') as batch:
        for col in ('after_failures', 'trigger', 'on_cancelled', 'on_lost', 'on_timed_out'):
            batch.drop_column(col)
