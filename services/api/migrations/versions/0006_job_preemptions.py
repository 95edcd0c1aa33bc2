"""api jobs: how often a job was preempted (its attempt ran again, unchanged)

Revision ID: 0006_job_preemptions
Revises: 0005_job_queue_place
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_job_preemptions"
down_revision = "0005_job_queue_place"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_jobs", sa.Column("preemptions", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    op.drop_column("api_jobs", "preemptions")
