"""retention rules (SWR image aging) and the history of what they deleted

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 23:40:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('retentions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('algorithm', sa.String(length=16), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('scope', sa.String(length=64), nullable=False),
    sa.Column('creator_name', sa.String(length=64), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_retentions_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retentions')),
    sa.UniqueConstraint('repository_id', name=op.f('uq_retentions_repository_id'))
    )
    op.create_table('retention_histories',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('retention_id', sa.Integer(), nullable=False),
    sa.Column('namespace', sa.String(length=64), nullable=False),
    sa.Column('repo', sa.String(length=128), nullable=False),
    sa.Column('tag', sa.String(length=128), nullable=False),
    sa.Column('digest', sa.String(length=80), nullable=False),
    sa.Column('rule_type', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_retention_histories_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retention_histories'))
    )
    op.create_index('ix_retention_histories_repository', 'retention_histories', ['repository_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_retention_histories_repository', table_name='retention_histories')
    op.drop_table('retention_histories')
    op.drop_table('retentions')
