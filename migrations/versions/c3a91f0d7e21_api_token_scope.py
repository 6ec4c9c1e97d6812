"""api_token.company_id and revoked_at: company-scoped, revocable personal API tokens

Revision ID: c3a91f0d7e21
Revises: b7d41c0e9a52
Create Date: 2026-12-06 09:00:00

"""
from alembic import op
import sqlalchemy as sa

revision = 'c3a91f0d7e21'
down_revision = 'b7d41c0e9a52'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('api_token') as batch:
        batch.add_column(sa.Column('company_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True))
        batch.create_index(batch.f('ix_api_token_company_id'), ['company_id'], unique=False)
        batch.create_foreign_key(
            batch.f('fk_api_token_company_id_company'), 'company', ['company_id'], ['id'],
            ondelete='CASCADE',
        )


def downgrade():
    with op.batch_alter_table('api_token') as batch:
        batch.drop_constraint(batch.f('fk_api_token_company_id_company'), type_='foreignkey')
        batch.drop_index(batch.f('ix_api_token_company_id'))
        batch.drop_column('revoked_at')
        batch.drop_column('company_id')
