"""api jobs: where a waiting job stands in its pool's queue (queued_at, retry_at) and an index of each pool's
active jobs in queue order

Revision ID: 0005_job_queue_place
Revises: 0004_job_export
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_job_queue_place"
down_revision = "0004_job_export"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_jobs", sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_jobs", sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True))
    # A job waiting now took its place with its last event (job.queued; a retry's backoff cannot be told
    # apart here, and ends within minutes).
    op.execute("UPDATE api_jobs SET queued_at = updated_at WHERE state = 'QUEUED'")
    op.create_index(
        "ix_api_jobs_pool_active",
        "api_jobs",
        ["pool", "state", "queued_at", "id"],
        postgresql_where=sa.text("state IN ('QUEUED', 'RUNNING')"),
    )


def downgrade() -> None:
    op.drop_index("ix_api_jobs_pool_active", table_name="api_jobs")
    op.drop_column("api_jobs", "retry_at")
    op.drop_column("api_jobs", "queued_at")
