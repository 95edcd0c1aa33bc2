"""A short way through FastAPI for `POST /v1/jobs`, the request a busy platform gets thousands of a second.

FastAPI's middleware, routing and dependency resolution cost a submit ~150 us of the api's CPU, about what
the submit itself costs. This ASGI middleware answers a submit whose body validates by calling the route
function (`routes.jobs.submit_job`) itself. It sits behind the request guard (`services.common.http_guard`),
so the caller is already authenticated (`scope["auth"]`) and the body already read within the limit, by
the same code as every other route; a failure is rendered by the one renderer
(`services.common.http_errors.render`), as FastAPI would render it. Every other request goes through
FastAPI as usual, a submit it did not answer handed on with its body (e.g. its 422 naming the bad fields).
The route stays what the OpenAPI document describes and what answers, one way or the other.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.routes.jobs import IDEMPOTENCY_KEY_MAX_LENGTH, submit_job
from services.api.schemas import JobCreate
from services.api.service import ProjectRef
from services.common.http_errors import render
from services.common.http_guard import headers_of, read_body, replay

PATH = "/v1/jobs"
# A submit is a few hundred bytes; a larger body (or one of unknown length) goes through FastAPI.
MAX_BODY_BYTES = 64 * 1024


class SubmitShortcut:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        headers = headers_of(scope)
        length = headers.get(b"content-length", b"")
        project = scope.get("auth")
        if (
            not isinstance(project, ProjectRef)
            or not length.isdigit()
            or int(length) > MAX_BODY_BYTES
            or not _is_json(headers)
        ):
            await self.app(scope, receive, send)
            return
        body, more = await read_body(receive)  # already read by the guard: one message
        if more is None:
            response = await _answer(scope, headers, project, body)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, replay(body, more, receive), send)


async def _answer(
    scope: Scope, headers: dict[bytes, bytes], project: ProjectRef, body: bytes
) -> Response | None:
    """The route's response, or None when FastAPI should take the request (nothing was done then)."""
    idempotency_key = headers.get(b"idempotency-key")
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        return None
    try:
        request = JobCreate.model_validate_json(body)
    except ValidationError:
        return None  # FastAPI names each bad field its own way
    try:
        return await submit_job(
            request,
            project,
            scope["app"].state.submitting,
            idempotency_key.decode("latin-1") if idempotency_key is not None else None,
        )
    except Exception as exc:
        return render(exc)


def _is_json(headers: dict[bytes, bytes]) -> bool:
    media_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"
