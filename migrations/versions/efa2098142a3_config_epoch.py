"""config_epoch: a counter that triggers bump when configuration a job runs with changes

The executor keeps each RunTemplate's context until it moves (models/config_epoch.py).

Revision ID: efa2098142a3
Revises: cee92eff59aa
Create Date: 2026-11-28 04:00:47

"""
from alembic import op
import sqlalchemy as sa

from multiflexi_web.models.config_epoch import create_sql, drop_sql

revision = 'efa2098142a3'
down_revision = 'cee92eff59aa'
branch_labels = None
depends_on = None

# The watched tables as they were when this revision was written (a later change of the list
# in the model gets a revision of its own).
WATCHED = {
    "runtemplate": ("name", "timeout", "executor_options", "application_id", "company_id"),
    "runtemplate_config": None,
    "runtemplate_credential": None,
    "application": None,
    "app_field": None,
    "company": None,
    "company_env": None,
    "credential": None,
    "credential_value": None,
    "credential_type": None,
    "credential_prototype": None,
    "credential_prototype_field": None,
    "file_upload": None,
}


def upgrade():
    op.create_table('config_epoch',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('n', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_config_epoch'))
    )
    op.execute("INSERT INTO config_epoch (id, n) VALUES (1, 0)")
    for statement in create_sql(op.get_bind().dialect.name, WATCHED):
        op.execute(statement)


def downgrade():
    for statement in drop_sql(op.get_bind().dialect.name, WATCHED):
        op.execute(statement)
    op.drop_table('config_epoch')
