"""Settings every service shares, read from the environment. Each service subclasses this with its own prefix
fields. Production differs from the embedded default only in these variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development"}
DEV_STORAGE_SIGNING_KEY = "dev-storage-signing-key"


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    env: Literal["local", "production"] = Field(default="local", validation_alias="VTP_ENV")
    nats_url: str = Field(default="nats://127.0.0.1:4222", validation_alias="NATS_URL")
    database_url: str = Field(
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/postgres", validation_alias="DATABASE_URL"
    )
    data_dir: Path = Field(default=Path(".vtp"), validation_alias="VTP_DATA_DIR")
    storage_backend: Literal["local", "s3"] = Field(default="local", validation_alias="STORAGE_BACKEND")
    storage_local_dir: Path | None = Field(default=None, validation_alias="STORAGE_LOCAL_DIR")
    storage_signing_key: str = Field(
        default=DEV_STORAGE_SIGNING_KEY,
        validation_alias=AliasChoices("VTP_STORAGE_SIGNING_KEY", "STORAGE_SIGNING_KEY"),
    )
    # STORAGE_BACKEND=s3: any S3-compatible service by endpoint (unset: AWS S3). Without an access key,
    # botocore's own chain (AWS_* variables, a web identity or instance role) supplies the credentials.
    storage_s3_endpoint: str | None = Field(default=None, validation_alias="STORAGE_S3_ENDPOINT")
    storage_s3_region: str = Field(default="us-east-1", validation_alias="STORAGE_S3_REGION")
    storage_s3_bucket: str | None = Field(default=None, validation_alias="STORAGE_S3_BUCKET")
    storage_s3_access_key_id: str | None = Field(default=None, validation_alias="STORAGE_S3_ACCESS_KEY_ID")
    storage_s3_secret_access_key: SecretStr | None = Field(
        default=None, validation_alias="STORAGE_S3_SECRET_ACCESS_KEY"
    )
    storage_s3_path_style: bool = Field(default=False, validation_alias="STORAGE_S3_PATH_STYLE")
    # Base URL of the events service as trainers reach it: callbacks and local-storage signed URLs live there.
    events_url: str = Field(default="http://127.0.0.1:8001", validation_alias="VTP_EVENTS_URL")
    log_level: str = Field(default="INFO", validation_alias="VTP_LOG_LEVEL")

    @property
    def storage_dir(self) -> Path:
        return self.storage_local_dir or self.data_dir / "storage"

    @model_validator(mode="after")
    def _refuse_placeholder_secrets_in_production(self) -> CommonSettings:
        if self.env == "production" and (
            self.storage_signing_key in PLACEHOLDER_SECRETS
            or self.storage_signing_key == DEV_STORAGE_SIGNING_KEY
        ):
            raise ValueError("VTP_STORAGE_SIGNING_KEY must be set to a real secret when VTP_ENV=production")
        return self

    @model_validator(mode="after")
    def _s3_needs_a_bucket_and_whole_keys(self) -> CommonSettings:
        if self.storage_backend == "s3" and not self.storage_s3_bucket:
            raise ValueError("STORAGE_S3_BUCKET must be set when STORAGE_BACKEND=s3")
        if (self.storage_s3_access_key_id is None) != (self.storage_s3_secret_access_key is None):
            raise ValueError("set both STORAGE_S3_ACCESS_KEY_ID and STORAGE_S3_SECRET_ACCESS_KEY, or neither")
        return self
