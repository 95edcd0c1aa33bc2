"""scheduler_jobs.queue_timeout and queue_deadline (a queued attempt no runner takes fails), indexed for
the ticker; preemptions and max_preemptions (a preempted attempt runs again, unchanged)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("scheduler_jobs", sa.Column("queue_timeout", sa.Float(), nullable=True))
    op.add_column("scheduler_jobs", sa.Column("queue_deadline", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "scheduler_jobs", sa.Column("preemptions", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "scheduler_jobs", sa.Column("max_preemptions", sa.Integer(), server_default="10", nullable=False)
    )
    op.create_index(
        "ix_scheduler_jobs_queue_deadline",
        "scheduler_jobs",
        ["queue_deadline"],
        postgresql_where=sa.text("queue_deadline IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_scheduler_jobs_queue_deadline", table_name="scheduler_jobs")
    op.drop_column("scheduler_jobs", "max_preemptions")
    op.drop_column("scheduler_jobs", "preemptions")
    op.drop_column("scheduler_jobs", "queue_deadline")
    op.drop_column("scheduler_jobs", "queue_timeout")
