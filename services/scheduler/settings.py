"""Scheduler settings, read from the environment (see docs/design.md, "Environment")."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import CommonSettings
from services.scheduler.core import Policy


class SchedulerSettings(CommonSettings):
    callback_private_key_file: Path = Field(
        default=Path(".vtp/keys/callback-signing.pem"), validation_alias="VTP_CALLBACK_PRIVATE_KEY_FILE"
    )
    callback_token_ttl: int = Field(default=86_400, gt=0, validation_alias="VTP_CALLBACK_TOKEN_TTL")
    heartbeat_timeout: float = Field(default=60.0, gt=0, validation_alias="VTP_HEARTBEAT_TIMEOUT")
    retry_backoff_base: float = Field(default=10.0, ge=0, validation_alias="VTP_RETRY_BACKOFF_BASE")
    retry_backoff_max: float = Field(default=600.0, ge=0, validation_alias="VTP_RETRY_BACKOFF_MAX")
    # Seconds a queued attempt waits for a runner before its job fails, unless the job sets its own; 0: for
    # ever. A week: a pool scaled to zero starts within minutes, one that starts nothing in a week is gone.
    queue_timeout: float = Field(default=7 * 86_400, ge=0, validation_alias="VTP_QUEUE_TIMEOUT")
    tick_interval: float = Field(default=1.0, gt=0, validation_alias="VTP_TICK_INTERVAL")
    # Each consumer fetches up to `batch_size` messages and applies them in one transaction, with up to
    # `parallel_batches` transactions at once; a job's reports are never in two of them at once
    # (messaging.group_commit), so they are applied in the order they came.
    batch_size: int = Field(default=128, ge=1, le=1000, validation_alias="VTP_SCHEDULER_BATCH_SIZE")
    parallel_batches: int = Field(default=4, ge=1, validation_alias="VTP_SCHEDULER_PARALLEL_BATCHES")
    db_pool_size: int = Field(default=10, ge=1, validation_alias="VTP_SCHEDULER_DB_POOL_SIZE")
    # `/metrics`, `/healthz` and `/readyz` (telemetry/metrics.py); unset: not served.
    metrics_port: int | None = Field(default=None, ge=0, le=65535, validation_alias="VTP_METRICS_PORT")
    metrics_host: str = Field(default="0.0.0.0", validation_alias="VTP_METRICS_HOST")

    @property
    def policy(self) -> Policy:
        return Policy(
            heartbeat_timeout=self.heartbeat_timeout,
            backoff_base=self.retry_backoff_base,
            backoff_max=self.retry_backoff_max,
            queue_timeout=self.queue_timeout or None,
        )
