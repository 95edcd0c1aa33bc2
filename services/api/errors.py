"""The api's errors: the platform's one error base (`services.common.errors`), under the names api code
raises. One handler renders them all (`services.common.http_errors`)."""

from __future__ import annotations

from services.common.errors import (
    BadRequest,
    Conflict,
    InvalidField,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from services.common.errors import ServiceError as ApiError

__all__ = [
    "ApiError",
    "BadRequest",
    "Conflict",
    "InvalidField",
    "NotFound",
    "PayloadTooLarge",
    "Unauthorized",
    "Unavailable",
]
