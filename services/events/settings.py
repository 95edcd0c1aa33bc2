from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.common.settings import CommonSettings

GIB = 1024**3


class EventsSettings(CommonSettings):
    """The events service: trainer callback ingress and the local-storage URL endpoints."""

    host: str = Field(default="127.0.0.1", validation_alias="VTP_EVENTS_HOST")
    port: int = Field(default=8001, ge=0, le=65535, validation_alias="VTP_EVENTS_PORT")
    callback_public_key_file: Path = Field(
        default=Path(".vtp/keys/callback-verify.pem"), validation_alias="VTP_CALLBACK_PUBLIC_KEY_FILE"
    )
    artifact_url_ttl: int = Field(default=3600, ge=1, validation_alias="VTP_ARTIFACT_URL_TTL")
    max_upload_bytes: int = Field(default=10 * GIB, ge=1, validation_alias="VTP_MAX_UPLOAD_BYTES")
    # The most a callback body may be (a log line is at most 10,000 characters); signed PUTs have their own
    # limit. Lowered at start-up to what fits one NATS message (the report it becomes).
    max_body_bytes: int = Field(default=256 * 1024, ge=1024, validation_alias="VTP_EVENTS_MAX_BODY_BYTES")
    # One log line per callback costs it measurable CPU; off unless asked for (debugging).
    access_log: bool = Field(default=False, validation_alias="VTP_EVENTS_ACCESS_LOG")

    def public_key_pem(self) -> str:
        return self.callback_public_key_file.read_text()
