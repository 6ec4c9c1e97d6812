"""action_default and app_exit_code bump config_epoch: the executor caches what deliveries
read of them with a template's context and hands it over with the runs it queues

Revision ID: f3c8a2d6e914
Revises: b7d3e9f1a2c4
Create Date: 2026-12-07 09:45:00

"""
from alembic import op

from multiflexi_web.models import config_epoch

revision = 'f3c8a2d6e914'
down_revision = 'b7d3e9f1a2c4'
branch_labels = None
depends_on = None

# As it was when this revision was written.
_TABLES = {"action_default": None, "app_exit_code": None}


def upgrade():
    dialect = op.get_bind().dialect.name
    # PostgreSQL: the shared trigger function exists already (the first statement makes it).
    for statement in config_epoch.create_sql(dialect, _TABLES)[1 if dialect == 'postgresql' else 0:]:
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    for statement in config_epoch.drop_sql(dialect, _TABLES):
        if not statement.startswith('DROP FUNCTION'):
            op.execute(statement)
