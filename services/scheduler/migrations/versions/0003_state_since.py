"""scheduler_jobs.state_since (what queue and run times are measured from), an index for queue depths

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scheduler_jobs", sa.Column("state_since", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_scheduler_jobs_queued_pool",
        "scheduler_jobs",
        ["pool"],
        postgresql_where=sa.text("state = 'QUEUED'"),
    )


def downgrade() -> None:
    op.drop_index("ix_scheduler_jobs_queued_pool", table_name="scheduler_jobs")
    op.drop_column("scheduler_jobs", "state_since")
