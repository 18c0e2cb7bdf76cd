"""sync jobs name whose rights they copy with (actor_id)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 08:00:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sync_jobs') as batch:
        batch.add_column(sa.Column('actor_id', sa.Integer(), nullable=True))
    # Jobs recorded before: an automatic job acts for its rule's owner, a manual one for the
    # user who asked (whose id the operator column holds).
    op.execute(
        "UPDATE sync_jobs SET actor_id = (SELECT r.creator_id FROM sync_rules r"
        " WHERE r.repository_id = sync_jobs.repository_id"
        " AND r.remote_region_id = sync_jobs.remote_region_id"
        " AND r.remote_namespace = sync_jobs.remote_namespace)"
        " WHERE trigger = 'auto'"
    )
    digits_only = (
        "operator_id ~ '^[0-9]+$'"
        if op.get_bind().dialect.name == "postgresql"
        else "operator_id <> '' AND operator_id NOT GLOB '*[^0-9]*'"
    )
    op.execute(
        "UPDATE sync_jobs SET actor_id = CAST(operator_id AS INTEGER)"
        f" WHERE trigger = 'manual' AND {digits_only}"
    )


def downgrade() -> None:
    with op.batch_alter_table('sync_jobs') as batch:
        batch.drop_column('actor_id')
