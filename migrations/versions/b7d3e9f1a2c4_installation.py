"""installation: this installation's identity, labelled on its containers, Pods and groups

Revision ID: b7d3e9f1a2c4
Revises: a9e4c2f7b613
Create Date: 2026-12-07 04:40:00

"""
import uuid
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa

revision = 'b7d3e9f1a2c4'
down_revision = 'a9e4c2f7b613'
branch_labels = None
depends_on = None


def upgrade():
    table = op.create_table(
        'installation',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('uid', sa.String(length=32), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_installation')),
    )
    now = datetime.now(timezone.utc)
    op.bulk_insert(table, [{'id': 1, 'uid': uuid.uuid4().hex, 'created_at': now}])


def downgrade():
    op.drop_table('installation')
