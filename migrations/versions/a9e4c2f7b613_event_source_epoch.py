"""event_source bumps config_epoch: the webhook view caches sources by token until it moves

Revision ID: a9e4c2f7b613
Revises: e5f1a9c3d7b2
Create Date: 2026-12-06 12:55:00

"""
from alembic import op

from multiflexi_web.models import config_epoch

revision = 'a9e4c2f7b613'
down_revision = 'e5f1a9c3d7b2'
branch_labels = None
depends_on = None

# As it was when this revision was written.
_EVENT_SOURCE = {
    "event_source": (
        "kind", "token", "secret", "config", "enabled", "require_timestamp", "signature_tolerance",
    ),
}


def upgrade():
    dialect = op.get_bind().dialect.name
    # PostgreSQL: the shared trigger function exists already (the first statement makes it).
    for statement in config_epoch.create_sql(dialect, _EVENT_SOURCE)[1 if dialect == 'postgresql' else 0:]:
        op.execute(statement)


def downgrade():
    dialect = op.get_bind().dialect.name
    for statement in config_epoch.drop_sql(dialect, _EVENT_SOURCE):
        if not statement.startswith('DROP FUNCTION'):
            op.execute(statement)
