"""sync pauses: copies to a peer, or from a repository or organization to a target, held

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 22:30:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sync_pauses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('remote_region_id', sa.String(length=64), nullable=False),
    sa.Column('remote_namespace', sa.String(length=64), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('repo_name', sa.String(length=128), nullable=False),
    sa.Column('paused_by', sa.String(length=64), nullable=False),
    sa.Column('paused_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_pauses')),
    sa.UniqueConstraint('remote_region_id', 'remote_namespace', 'namespace', 'repo_name', name=op.f('uq_sync_pauses_remote_region_id'))
    )


def downgrade() -> None:
    op.drop_table('sync_pauses')
