"""The api's one error base. Domain code raises these; one handler (in `app.py`) renders them as
`{"error": <code>, "detail": <anything>}` with the error's status. Nothing here imports a web framework."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An expected failure with a stable machine-readable `code` and an HTTP `status`."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message


class Unauthorized(ApiError):
    """No API key, or one that matches no project."""

    status = 401
    code = "unauthorized"


class NotFound(ApiError):
    """The thing does not exist, or belongs to another project (we never say which)."""

    status = 404
    code = "not_found"


class Conflict(ApiError):
    """The request is valid but the resource's state forbids it (e.g. cancelling a finished job)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ApiError):
    status = 413
    code = "payload_too_large"


class InvalidField(ApiError):
    """A field that is well-formed but names something unusable (e.g. an unknown dataset). Rendered like
    request validation errors so a client finds the bad field at the same place."""

    status = 422
    code = "validation_error"

    def __init__(self, location: tuple[str, ...], message: str, kind: str = "value_error") -> None:
        super().__init__(message, [{"loc": list(location), "msg": message, "type": kind}])


class BadRequest(ApiError):
    status = 400
    code = "bad_request"


class Unavailable(ApiError):
    """A dependency (NATS, storage) failed transiently; the client may retry."""

    status = 503
    code = "unavailable"
