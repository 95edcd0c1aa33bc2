"""api models: weights uploaded to start jobs from; the starting weights of a job

Revision ID: 0003_models
Revises: 0002_dataset_versions
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_models"
down_revision = "0002_dataset_versions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_models",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "project_id", sa.String(32), sa.ForeignKey("api_projects.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("storage_key", sa.String(512), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_api_models_project_created", "api_models", ["project_id", "created_at"])
    op.add_column("api_jobs", sa.Column("weights", sa.String(240), nullable=True))


def downgrade() -> None:
    op.drop_column("api_jobs", "weights")
    op.drop_index("ix_api_models_project_created", table_name="api_models")
    op.drop_table("api_models")
