"""secret masking: runtemplate.mask_output (on by default), company_env.secret (encrypted value)

Known secret values of a job are masked in its stored output unless a RunTemplate turns that
off; company environment values named like secrets are stored encrypted (existing rows stay
plain until they are set again). mask_output joins the config_epoch watch list of runtemplate.

Revision ID: b7d41c2e9a10
Revises: b7d41c2e9f03
Create Date: 2026-12-06 08:40:00

"""
from alembic import op
import sqlalchemy as sa

from multiflexi_web.models.config_epoch import create_sql, drop_sql

revision = 'b7d41c2e9a10'
down_revision = 'b7d41c2e9f03'
branch_labels = None
depends_on = None

OLD = {"runtemplate": ("name", "timeout", "executor_options", "application_id", "company_id")}
NEW = {"runtemplate": (*OLD["runtemplate"], "mask_output")}


def _retrigger(watched):
    """Install the triggers of these tables again (a batch copy of a SQLite table loses them)."""
    dialect = op.get_bind().dialect.name
    for table in watched:
        if dialect == "postgresql":
            # drop_sql would also drop the function the other tables' triggers share.
            op.execute(f"DROP TRIGGER IF EXISTS config_changed_{table} ON {table}")
        else:
            for statement in drop_sql(dialect, {table: watched[table]}):
                op.execute(statement)
    for statement in create_sql(dialect, watched):
        op.execute(statement)


def upgrade():
    with op.batch_alter_table('runtemplate', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('mask_output', sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table('company_env', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('secret', sa.Boolean(), server_default=sa.false(), nullable=False)
        )
    _retrigger({**NEW, "company_env": None})


def downgrade():
    if op.get_bind().dialect.name == "postgresql":  # the trigger names mask_output
        op.execute("DROP TRIGGER IF EXISTS config_changed_runtemplate ON runtemplate")
    with op.batch_alter_table('company_env', schema=None) as batch_op:
        batch_op.drop_column('secret')
    with op.batch_alter_table('runtemplate', schema=None) as batch_op:
        batch_op.drop_column('mask_output')
    _retrigger({**OLD, "company_env": None})
