"""tag overrides: the digest a sync copy replaced, for rollback

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 22:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('tag_overrides',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('tag', sa.String(length=128), nullable=False),
    sa.Column('previous_digest', sa.String(length=80), nullable=False),
    sa.Column('digest', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('operator_name', sa.String(length=64), nullable=False),
    sa.Column('replaced_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_tag_overrides_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tag_overrides'))
    )
    with op.batch_alter_table('tag_overrides', schema=None) as batch_op:
        batch_op.create_index('ix_tag_overrides_tag', ['repository_id', 'tag', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tag_overrides', schema=None) as batch_op:
        batch_op.drop_index('ix_tag_overrides_tag')
    op.drop_table('tag_overrides')
