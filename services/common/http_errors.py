"""The one renderer of failures for every HTTP service (api, events): whatever goes wrong, the client gets
`{"error": <code>, "detail": ...}` as JSON, never a plain-text page.

- a `ServiceError`: its status, code, detail and headers;
- request validation (FastAPI's, or a model validated by hand): 422 `validation_error`, one item per bad
  field (`loc`, `msg`, `type`; never the input, which may be what could not be stored);
- Starlette's HTTP errors (404, 405, a body FastAPI could not parse): their status;
- a dependency that is down (Postgres, NATS): 503 `unavailable` with `Retry-After`;
- a message larger than NATS takes: 413;
- anything else: 500 `internal_error`, logged with its traceback.

`render(exc)` is the whole decision, a plain function, so code that answers outside FastAPI's routing
(the submit fast path, the request guard) answers exactly as a route would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import nats.errors
import nats.js.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy import exc as sa
from starlette.exceptions import HTTPException
from starlette.responses import Response

from services.common.errors import RETRY_AFTER_SECONDS, ServiceError

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
}
RETRY_AFTER = {"Retry-After": str(RETRY_AFTER_SECONDS)}

# Failures that say a dependency is down or unreachable, not that the request is wrong.
_DATABASE_DOWN: tuple[type[BaseException], ...] = (
    sa.OperationalError,
    sa.InterfaceError,
    sa.DisconnectionError,
    sa.TimeoutError,  # no pooled connection came free in time
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)
_NATS_DOWN: tuple[type[BaseException], ...] = (nats.errors.Error, nats.js.errors.Error)


def error_response(status: int, code: str, detail: Any, headers: Mapping[str, str] | None = None) -> Response:
    # ASCII-escaped: a detail may hold text UTF-8 cannot encode (a lone surrogate in a refused key).
    body = json.dumps({"error": code, "detail": detail}, ensure_ascii=True, default=str)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def validation_detail(errors: Sequence[Any], prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]} for error in errors]


def render(exc: BaseException) -> Response:
    """The response for a failure, by what it is (see the module's docstring)."""
    if isinstance(exc, ServiceError):
        return error_response(exc.status, exc.code, exc.detail, exc.headers)
    if isinstance(exc, RequestValidationError):
        return error_response(422, "validation_error", validation_detail(exc.errors()))
    if isinstance(exc, ValidationError):
        detail = validation_detail(exc.errors(include_url=False), ("body",))
        return error_response(422, "validation_error", detail)
    if isinstance(exc, HTTPException):
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, exc.detail, exc.headers)
    if isinstance(exc, nats.errors.MaxPayloadError):
        return error_response(413, "payload_too_large", "the message is larger than the message bus takes")
    if _database_down(exc):
        log.warning("database unavailable: %s", exc)
        return error_response(503, "unavailable", "the database is unavailable; retry later", RETRY_AFTER)
    if isinstance(exc, _NATS_DOWN):
        log.warning("message bus unavailable: %r", exc)
        return error_response(503, "unavailable", "the message bus is unavailable; retry later", RETRY_AFTER)
    if isinstance(exc, sa.DataError):
        # Input validation keeps unstorable values out; should one get through, it is still the request's.
        log.warning("the database refused a value: %s", exc)
        return error_response(400, "bad_request", "the database cannot store a value of this request")
    if isinstance(exc, ConnectionError | TimeoutError):
        log.warning("dependency unavailable: %r", exc)
        return error_response(503, "unavailable", "a dependency is unavailable; retry later", RETRY_AFTER)
    log.error("unexpected error", exc_info=exc)
    return error_response(500, "internal_error", "an unexpected error; it was logged")


def _database_down(exc: BaseException) -> bool:
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    # The asyncpg dialect wraps the driver's exception in a DBAPI-style one of its own (a generic `Error`
    # while Postgres is starting up, say): the driver's is that one's cause.
    return any(isinstance(e, _DATABASE_DOWN) for e in (exc, orig, getattr(orig, "__cause__", None)))


async def _handle(request: Request, exc: Exception) -> Response:
    return render(exc)


def install(app: FastAPI) -> None:
    """Render every failure of the app's routes with `render`. `Exception` lands in Starlette's outermost
    middleware, which sends our response and then re-raises (the server logs it once more)."""
    for kind in (ServiceError, RequestValidationError, ValidationError, HTTPException):
        app.add_exception_handler(kind, _handle)
    for kind in (sa.SQLAlchemyError, asyncpg.PostgresError, asyncpg.InterfaceError, *_NATS_DOWN, OSError):
        app.add_exception_handler(kind, _handle)
    app.add_exception_handler(Exception, _handle)
