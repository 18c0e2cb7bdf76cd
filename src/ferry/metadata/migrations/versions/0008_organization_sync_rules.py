"""organization-wide sync rules with filters

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 22:10:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sync_org_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('remote_region_id', sa.String(length=64), nullable=False),
    sa.Column('remote_namespace', sa.String(length=64), nullable=False),
    sa.Column('override', sa.Boolean(), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=False),
    sa.Column('creator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_sync_org_rules_organization_id_organizations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_org_rules')),
    sa.UniqueConstraint('organization_id', 'remote_region_id', 'remote_namespace', name=op.f('uq_sync_org_rules_organization_id'))
    )


def downgrade() -> None:
    op.drop_table('sync_org_rules')
