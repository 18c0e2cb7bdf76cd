"""platform subsets: an organization rule's platforms, and a job's

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 22:55:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sync_org_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('platforms', sa.JSON(), nullable=False, server_default='[]'))
    with op.batch_alter_table('sync_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('platforms', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_jobs', schema=None) as batch_op:
        batch_op.drop_column('platforms')
    with op.batch_alter_table('sync_org_rules', schema=None) as batch_op:
        batch_op.drop_column('platforms')
