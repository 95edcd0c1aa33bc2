from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Message(BaseModel):
    """Base of every NATS message. Unknown fields are ignored so that a newer producer (which may add optional
    fields within a version) never breaks an older consumer."""

    model_config = ConfigDict(extra="ignore", frozen=True)
