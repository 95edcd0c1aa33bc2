"""Settings of the api service: the common ones plus where it listens and how large a dataset may be."""

from __future__ import annotations

from pydantic import Field

from services.common.settings import CommonSettings

GIB = 1024**3


class ApiSettings(CommonSettings):
    host: str = Field(default="127.0.0.1", validation_alias="VTP_API_HOST")
    port: int = Field(default=8000, ge=0, le=65535, validation_alias="VTP_API_PORT")
    max_dataset_bytes: int = Field(default=2 * GIB, ge=1, validation_alias="VTP_MAX_DATASET_BYTES")
    # Seconds between SSE keep-alive comments; proxies drop idle connections.
    # One log line per request costs a submit about 5% more CPU; off unless asked for (debugging).
    access_log: bool = Field(default=False, validation_alias="VTP_API_ACCESS_LOG")
    sse_keepalive_seconds: float = Field(default=15.0, gt=0, validation_alias="VTP_API_SSE_KEEPALIVE")
