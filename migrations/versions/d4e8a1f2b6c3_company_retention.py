"""company retention: per-company overrides of the global retention settings (NULL = global)

Revision ID: d4e8a1f2b6c3
Revises: c3a7e1d5b801
Create Date: 2026-12-06 11:45:00

"""
from alembic import op
import sqlalchemy as sa

revision = 'd4e8a1f2b6c3'
down_revision = 'c3a7e1d5b801'
branch_labels = None
depends_on = None

COLUMNS = (
    'retain_jobs_days', 'retain_failed_days', 'retain_output_days', 'retain_artifacts_days',
    'artifact_budget_mb',
)


def upgrade():
    with op.batch_alter_table('company') as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.Integer(), nullable=True))


def downgrade():
    with op.batch_alter_table('company') as batch:
        for name in reversed(COLUMNS):
            batch.drop_column(name)
