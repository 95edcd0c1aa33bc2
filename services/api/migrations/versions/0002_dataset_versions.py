"""api datasets: versions per project and name, validation status and report; the dataset version of a job

Revision ID: 0002_dataset_versions
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002_dataset_versions"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Datasets uploaded before validation existed stay usable: READY, numbered by upload order per name.
    op.add_column("api_datasets", sa.Column("version", sa.Integer, nullable=True))
    op.execute(
        """
        UPDATE api_datasets AS d SET version = numbered.n
        FROM (
            SELECT id, row_number() OVER (PARTITION BY project_id, name ORDER BY created_at, id) AS n
            FROM api_datasets
        ) AS numbered
        WHERE d.id = numbered.id
        """
    )
    op.alter_column("api_datasets", "version", nullable=False)
    op.add_column("api_datasets", sa.Column("status", sa.String(16), nullable=False, server_default="READY"))
    op.alter_column("api_datasets", "status", server_default=None)
    op.add_column("api_datasets", sa.Column("content_hash", sa.String(80), nullable=True))
    op.add_column("api_datasets", sa.Column("summary", JSONB, nullable=True))
    op.add_column("api_datasets", sa.Column("problems", JSONB, nullable=True))
    op.add_column("api_datasets", sa.Column("problem_count", sa.Integer, nullable=False, server_default="0"))
    op.add_column("api_datasets", sa.Column("reason", sa.Text, nullable=True))
    op.add_column("api_datasets", sa.Column("validation_job_id", sa.String(32), nullable=True))
    op.create_unique_constraint(
        "uq_api_datasets_project_name_version", "api_datasets", ["project_id", "name", "version"]
    )
    op.create_index("ix_api_datasets_validation_job", "api_datasets", ["validation_job_id"], unique=True)
    op.add_column("api_jobs", sa.Column("dataset_version", sa.Integer, nullable=True))


def downgrade() -> None:
    op.drop_column("api_jobs", "dataset_version")
    op.drop_index("ix_api_datasets_validation_job", table_name="api_datasets")
    op.drop_constraint("uq_api_datasets_project_name_version", "api_datasets", type_="unique")
    for column in (
        "validation_job_id",
        "reason",
        "problem_count",
        "problems",
        "summary",
        "content_hash",
        "status",
        "version",
    ):
        op.drop_column("api_datasets", column)
