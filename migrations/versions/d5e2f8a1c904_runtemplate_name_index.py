"""Index runtemplate (name, id): the portal's RunTemplate list pages in that order

Additive: one index.

Revision ID: d5e2f8a1c904
Revises: e1a2b3c4d5f6
Create Date: 2026-12-06 12:00:00

"""
from alembic import op

revision = 'd5e2f8a1c904'
down_revision = 'e1a2b3c4d5f6'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('runtemplate') as batch:
        batch.create_index('ix_runtemplate_name_id', ['name', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('runtemplate') as batch:
        batch.drop_index('ix_runtemplate_name_id')
