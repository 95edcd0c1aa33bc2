"""The platform's one error base. Domain code of every service raises these (each service's `errors.py`
names its own on top); one renderer (`services.common.http_errors`) answers them as
`{"error": <code>, "detail": <anything>}` with the error's status. Nothing here imports a web framework."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

# How soon a client may retry after a 503: a dependency coming back is noticed within a second or two.
RETRY_AFTER_SECONDS = 2


class ServiceError(Exception):
    """An expected failure with a stable machine-readable `code` and an HTTP `status`."""

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    headers: ClassVar[Mapping[str, str]] = {}

    def __init__(self, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail if detail is not None else message


class BadRequest(ServiceError):
    status = 400
    code = "bad_request"


class Unauthorized(ServiceError):
    """No credentials, or credentials that are refused (an unknown API key, a bad callback token)."""

    status = 401
    code = "unauthorized"
    headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class NotFound(ServiceError):
    """The thing does not exist, or belongs to another project (we never say which)."""

    status = 404
    code = "not_found"


class Conflict(ServiceError):
    """The request is valid but the resource's state forbids it (e.g. cancelling a finished job)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(ServiceError):
    status = 413
    code = "payload_too_large"


class InvalidField(ServiceError):
    """A field that is well-formed but names something unusable (e.g. an unknown dataset). Rendered like
    request validation errors so a client finds the bad field at the same place."""

    status = 422
    code = "validation_error"

    def __init__(self, location: tuple[str, ...], message: str, kind: str = "value_error") -> None:
        super().__init__(message, [{"loc": list(location), "msg": message, "type": kind}])


class Unavailable(ServiceError):
    """A dependency (Postgres, NATS, storage) failed transiently; the client may retry."""

    status = 503
    code = "unavailable"
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
