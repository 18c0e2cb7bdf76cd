"""rule bandwidth: an organization rule's cap, and which rule queued a job

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 23:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sync_org_rules', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bandwidth', sa.Integer(), nullable=True))
    with op.batch_alter_table('sync_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('org_rule_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('bandwidth', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_jobs', schema=None) as batch_op:
        batch_op.drop_column('bandwidth')
        batch_op.drop_column('org_rule_id')
    with op.batch_alter_table('sync_org_rules', schema=None) as batch_op:
        batch_op.drop_column('bandwidth')
