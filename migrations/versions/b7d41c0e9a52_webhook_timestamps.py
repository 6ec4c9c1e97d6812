"""event_source: signed webhook timestamps (require flag, tolerance); webhook_signature replays

Additive: existing sources keep accepting X-Hub-Signature-256 (require_timestamp false).

Revision ID: b7d41c0e9a52
Revises: b7d41c2e9a10
Create Date: 2026-12-06 08:55:00

"""
from alembic import op
import sqlalchemy as sa

revision = 'b7d41c0e9a52'
down_revision = 'b7d41c2e9a10'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('event_source') as batch:
        batch.add_column(
            sa.Column('require_timestamp', sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column('signature_tolerance', sa.Integer(), nullable=False, server_default='300')
        )
    op.create_table(
        'webhook_signature',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('source_id', sa.Integer(), nullable=False),
        sa.Column('signature', sa.String(length=64), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['source_id'], ['event_source.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source_id', 'signature'),
    )
    op.create_index(
        op.f('ix_webhook_signature_expires_at'), 'webhook_signature', ['expires_at'], unique=False
    )


def downgrade():
    op.drop_index(op.f('ix_webhook_signature_expires_at'), table_name='webhook_signature')
    op.drop_table('webhook_signature')
    with op.batch_alter_table('event_source') as batch:
        batch.drop_column('signature_tolerance')
        batch.drop_column('require_timestamp')
