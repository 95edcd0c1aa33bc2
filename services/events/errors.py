"""Every expected failure of the events service is an `EventsError` with an HTTP status; one handler in
`app.py` renders them all as `{"error": ..., "detail": ...}`."""

from __future__ import annotations


class EventsError(Exception):
    status_code = 400
    error = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthorized(EventsError):
    """The callback token is missing or refused (expired, tampered, wrong algorithm...)."""

    status_code = 401
    error = "unauthorized"


class Forbidden(EventsError):
    """A signed storage URL that is expired, tampered with, or for another key or method."""

    status_code = 403
    error = "forbidden"


class InvalidKey(EventsError):
    status_code = 400
    error = "invalid_key"


class NotFound(EventsError):
    status_code = 404
    error = "not_found"


class ArtifactMismatch(EventsError):
    """`artifacts/complete` for an object that is missing or whose size differs from the claim."""

    status_code = 409
    error = "artifact_mismatch"


class TooLarge(EventsError):
    status_code = 413
    error = "too_large"


class Unavailable(EventsError):
    """NATS or the database did not answer: the caller should retry."""

    status_code = 503
    error = "unavailable"
