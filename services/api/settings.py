"""Settings of the api service: the common ones plus where it listens, how large a dataset may be and how
uploaded datasets are validated."""

from __future__ import annotations

from pydantic import Field

from contracts.jobs import POOL_PATTERN
from services.common.settings import CommonSettings

GIB = 1024**3


class ApiSettings(CommonSettings):
    host: str = Field(default="127.0.0.1", validation_alias="VTP_API_HOST")
    port: int = Field(default=8000, ge=0, le=65535, validation_alias="VTP_API_PORT")
    max_dataset_bytes: int = Field(default=2 * GIB, ge=1, validation_alias="VTP_MAX_DATASET_BYTES")
    max_model_bytes: int = Field(default=2 * GIB, ge=1, validation_alias="VTP_MAX_MODEL_BYTES")
    # The most a JSON body (a submit, a cancel, a dataset naming an upload) may be; multipart uploads have
    # the dataset and model limits. Lowered at start-up to what fits one NATS message.
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, validation_alias="VTP_API_MAX_BODY_BYTES")
    # Every uploaded dataset is validated by a job on this pool (CPU is enough).
    validation_pool: str = Field(
        default="local", pattern=POOL_PATTERN, validation_alias="VTP_VALIDATION_POOL"
    )
    # How much a dataset archive may unpack to; unset, the validator's defaults (20 GiB, 1M files, ratio 200).
    validation_max_bytes: int | None = Field(default=None, ge=1, validation_alias="VTP_VALIDATION_MAX_BYTES")
    validation_max_files: int | None = Field(default=None, ge=1, validation_alias="VTP_VALIDATION_MAX_FILES")
    validation_max_ratio: float | None = Field(
        default=None, gt=1, validation_alias="VTP_VALIDATION_MAX_RATIO"
    )
    # How long a signed dataset upload URL (`POST /v1/datasets/uploads`) stays valid, in seconds.
    upload_url_ttl: int = Field(default=3600, ge=1, validation_alias="VTP_UPLOAD_URL_TTL")
    # How long a signed artifact download URL (`GET /v1/jobs/{id}/artifacts/{name}/url`) stays valid: long
    # enough to start the download (it then runs to the end), short as it needs no key.
    download_url_ttl: int = Field(default=300, ge=1, validation_alias="VTP_DOWNLOAD_URL_TTL")
    # An upload not turned into a dataset this many seconds after it was written is deleted.
    upload_keep_seconds: int = Field(default=86_400, ge=1, validation_alias="VTP_UPLOAD_KEEP_SECONDS")
    # One log line per request costs a submit about 5% more CPU; off unless asked for (debugging).
    access_log: bool = Field(default=False, validation_alias="VTP_API_ACCESS_LOG")
    # Seconds between SSE keep-alive comments; proxies drop idle connections.
    sse_keepalive_seconds: float = Field(default=15.0, gt=0, validation_alias="VTP_API_SSE_KEEPALIVE")
