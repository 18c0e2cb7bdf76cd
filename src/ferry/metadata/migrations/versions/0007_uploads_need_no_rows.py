"""upload sessions need no rows: their ids are signed (images/upload_ids.py)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 15:00:00

Sessions open at the upgrade had unsigned ids and are refused afterwards (BLOB_UPLOAD_UNKNOWN);
clients start those uploads again. Their bytes go at the next garbage collection past the
upload expiry.
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table('uploads')


def downgrade() -> None:
    op.create_table('uploads',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('repository_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('fk_uploads_repository_id_repositories'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_uploads'))
    )
