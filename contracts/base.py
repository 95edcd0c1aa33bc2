from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Message(BaseModel):
    """Base of every NATS message. Unknown fields are ignored so that a newer producer (which may add optional
    fields within a version) never breaks an older consumer."""

    model_config = ConfigDict(extra="ignore", frozen=True)


def absent(value: object) -> bool:
    """For `Field(exclude_if=absent)`: an optional field added within a version is left out of a message
    that does not use it, so the message serializes exactly as before the field existed."""
    return value is None
