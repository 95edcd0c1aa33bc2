"""The events service's errors: the platform's one error base (`services.common.errors`) plus the failures
only callbacks and signed storage URLs have. One handler renders them all (`services.common.http_errors`)."""

from __future__ import annotations

from services.common.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from services.common.errors import ServiceError as EventsError

TooLarge = PayloadTooLarge

__all__ = [
    "ArtifactMismatch",
    "AttemptSuperseded",
    "EventsError",
    "Forbidden",
    "InvalidKey",
    "NotFound",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
]


class InvalidKey(BadRequest):
    """A storage key that is malformed or points outside the job's place."""

    code = "invalid_key"


class ArtifactMismatch(Conflict):
    """`artifacts/complete` for an object that is missing or whose size differs from the claim."""

    code = "artifact_mismatch"


class AttemptSuperseded(Conflict):
    """A callback from an attempt the job has moved on from: only its heartbeat is answered (with stop)."""

    code = "attempt_superseded"
