"""A short way through FastAPI for `POST /v1/jobs`, the request a busy platform gets thousands of a second.

FastAPI's middleware, routing and dependency resolution cost a submit ~150 us of the api's CPU, about what
the submit itself costs. This ASGI middleware answers a submit with a bearer key and a body that validates
by calling the route function (`routes.jobs.submit_job`) itself; an error of the submit is rendered by the
app's exception handler for it, as FastAPI would. Every other request goes through FastAPI as usual, a
submit it did not answer with the body already read handed on (e.g. its 422 naming the bad fields). The
route stays what the OpenAPI document describes and what answers, one way or the other.
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api import service
from services.api.routes.jobs import IDEMPOTENCY_KEY_MAX_LENGTH, submit_job
from services.api.schemas import JobCreate

PATH = "/v1/jobs"
# A submit is a few hundred bytes; a larger body (or one of unknown length) goes through FastAPI unread.
MAX_BODY_BYTES = 64 * 1024


class SubmitShortcut:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        length = headers.get(b"content-length", b"")
        if not length.isdigit() or int(length) > MAX_BODY_BYTES or not _is_json(headers):
            await self.app(scope, receive, send)
            return
        body, more = await _read_body(receive)
        if more is None:
            response = await _answer(scope, headers, body)
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, _replay(body, more, receive), send)


async def _answer(scope: Scope, headers: dict[bytes, bytes], body: bytes) -> Response | None:
    """The route's response, or None when FastAPI should take the request (nothing was done then)."""
    scheme, _, api_key = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    idempotency_key = headers.get(b"idempotency-key")
    if scheme.lower() != "bearer" or not api_key:
        return None
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX_LENGTH:
        return None
    try:
        request = JobCreate.model_validate_json(body)
    except ValidationError:
        return None  # FastAPI names each bad field its own way
    app = scope["app"]
    try:
        project = await service.authenticate(app.state.sessions, app.state.lookups, api_key)
        return await submit_job(
            request,
            project,
            app.state.submitting,
            idempotency_key.decode("latin-1") if idempotency_key is not None else None,
        )
    except Exception as exc:
        # Rendered by the app's own handler for it, as FastAPI would; one it has none for is a 500.
        for kind in type(exc).__mro__:
            if kind in app.exception_handlers:
                return await app.exception_handlers[kind](Request(scope), exc)  # type: ignore[no-any-return]
        raise


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope["headers"]}


def _is_json(headers: dict[bytes, bytes]) -> bool:
    media_type = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body, or what came before a message that is not body (e.g. the client going away), which
    is then returned too so that it can be handed on."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(body: bytes, more: Message | None, receive: Receive) -> Receive:
    """A `receive` that first gives the body already read (and the message after it), then the real one."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more is not None}]
    if more is not None:
        pending.append(more)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
