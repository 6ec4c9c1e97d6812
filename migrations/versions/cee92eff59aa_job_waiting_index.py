"""job: a partial index of the waiting jobs in due order replaces (status, scheduled_for)

A claim on (status, scheduled_for) read and sorted every waiting job (two statuses cannot come
out of one index range in order), so each claim cost grew with the backlog. The partial index
walks from its low end and stops at the first claimable rows; finished jobs never enter it.

Revision ID: cee92eff59aa
Revises: 68e31c216223
Create Date: 2026-11-28 03:10:01

"""
from alembic import op
import sqlalchemy as sa

revision = 'cee92eff59aa'
down_revision = '68e31c216223'
branch_labels = None
depends_on = None

# The predicate exactly as models/job.py writes it: queries must repeat it to use the index.
WAITING = sa.text("(status IN ('scheduled', 'blocked')) IS TRUE")


def upgrade():
    op.create_index(
        'ix_job_waiting', 'job', ['scheduled_for', 'id'], unique=False,
        postgresql_where=WAITING, sqlite_where=WAITING,
    )
    op.drop_index('ix_job_status_scheduled_for', table_name='job')


def downgrade():
    op.create_index('ix_job_status_scheduled_for', 'job', ['status', 'scheduled_for'], unique=False)
    op.drop_index('ix_job_waiting', table_name='job')
