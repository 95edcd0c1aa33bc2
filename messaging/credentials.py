"""The NATS user a process connects as."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class NatsCredentials(BaseSettings):
    """The NATS user of this process's role (`vtp admin nats-config` makes one per role). Unset: connect
    without authentication (a server without `authorization`, or credentials in `NATS_URL`)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    user: str | None = Field(default=None, validation_alias="NATS_USER")
    password: SecretStr | None = Field(default=None, validation_alias="NATS_PASSWORD")

    @model_validator(mode="after")
    def _both_or_neither(self) -> NatsCredentials:
        if bool(self.user) != bool(self.password and self.password.get_secret_value()):
            raise ValueError("NATS_USER and NATS_PASSWORD are set together or not at all")
        return self
