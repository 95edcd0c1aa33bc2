"""scheduler_jobs and scheduler_inputs

Revision ID: 0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scheduler_jobs",
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("spec", JSONB(), nullable=False),
        sa.Column("dataset", JSONB(), nullable=False),
        sa.Column("pool", sa.String(63), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("heartbeat_deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_scheduler_jobs"),
    )
    op.create_index(
        "ix_scheduler_jobs_heartbeat_deadline",
        "scheduler_jobs",
        ["heartbeat_deadline"],
        postgresql_where=sa.text("heartbeat_deadline IS NOT NULL"),
    )
    op.create_index(
        "ix_scheduler_jobs_retry_at",
        "scheduler_jobs",
        ["retry_at"],
        postgresql_where=sa.text("retry_at IS NOT NULL"),
    )
    op.create_table(
        "scheduler_inputs",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("source", sa.String(80), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("body", JSONB(), nullable=False),
        sa.Column("policy", JSONB(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("events", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_scheduler_inputs"),
    )
    op.create_index("ix_scheduler_inputs_job_id", "scheduler_inputs", ["job_id", "id"])
    op.create_index(
        "ix_scheduler_inputs_job_id_source",
        "scheduler_inputs",
        ["job_id", "source"],
        unique=True,
        postgresql_where=sa.text("source IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_table("scheduler_inputs")
    op.drop_table("scheduler_jobs")
