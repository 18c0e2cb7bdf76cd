"""access keys lose the per-key lockout (login throttling is per key and client address now)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 07:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('access_keys') as batch:
        batch.drop_column('failures')
        batch.drop_column('locked_until')


def downgrade() -> None:
    with op.batch_alter_table('access_keys') as batch:
        batch.add_column(sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column('failures', sa.Integer(), nullable=False, server_default='0'))
