"""opt-in deletion sync on organization rules

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 22:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sync_org_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sync_deletes', sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column('delete_grace_seconds', sa.Integer(), nullable=False, server_default='3600'))
        batch_op.add_column(sa.Column('sync_retention_deletes', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('sync_org_rules', schema=None) as batch_op:
        batch_op.drop_column('sync_retention_deletes')
        batch_op.drop_column('delete_grace_seconds')
        batch_op.drop_column('sync_deletes')
