"""api jobs: the export formats a job asked for

Revision ID: 0004_job_export
Revises: 0003_models
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004_job_export"
down_revision = "0003_models"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("api_jobs", sa.Column("export", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("api_jobs", "export")
