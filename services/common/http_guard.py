"""What every request meets first, in both HTTP services: authentication, then a bounded body.

`RequestGuard` is plain ASGI middleware, outermost of the app's own. For a route that needs credentials it
authenticates from the headers alone, before a byte of the body is read (a 96 MiB body without a key cost
the api 207 MiB when FastAPI read it first), and leaves the result in `scope["auth"]` for the route. Then
it reads the body within the route's limit: a declared `Content-Length` over it is refused at once, unread;
a chunked body is counted as it arrives and cut at the limit. Routes that stream their own body (multipart
uploads, signed PUTs) say so by having no limit here and keep their own. Every refusal is rendered by the
one renderer (`http_errors.render`), so it reads like any other error.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.errors import BadRequest, PayloadTooLarge
from services.common.http_errors import render

Headers = Mapping[bytes, bytes]
# The credentials' principal (a project, callback claims) from the request's headers, or a ServiceError.
Authenticate = Callable[[Scope, Headers], Awaitable[Any]]
# The most a route's body may be, in bytes; None: the route reads (and limits) its body itself.
BodyLimit = Callable[[Scope, Headers], int | None]
# Whether a route needs credentials.
Protected = Callable[[Scope], bool]


@dataclass
class Limits:
    """The JSON body limit, which start-up may lower (to fit the NATS server's max_payload)."""

    json_body: int


def headers_of(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope["headers"]}


def bearer_token(headers: Headers) -> str | None:
    """The token of `Authorization: Bearer <token>`, or None."""
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


class RequestGuard:
    def __init__(
        self, app: ASGIApp, *, protected: Protected, authenticate: Authenticate, body_limit: BodyLimit
    ) -> None:
        self.app = app
        self._protected = protected
        self._authenticate = authenticate
        self._body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = headers_of(scope)
        try:
            if self._protected(scope):
                scope["auth"] = await self._authenticate(scope, headers)
            limit = self._body_limit(scope, headers)
            if limit is None:
                await self.app(scope, receive, send)
                return
            _refuse_declared(headers, limit)
            body, more = await read_body(receive, limit)
        except Exception as exc:  # refused, or a dependency of authentication is down: as a route answers
            # The connection stays open: the server discards the rest of the body as it arrives (it is
            # framed, so nothing of it is read as a next request), and a client still sending it gets
            # this answer instead of a reset connection.
            await render(exc)(scope, receive, send)
            return
        await self.app(scope, replay(body, more, receive), send)


def _refuse_declared(headers: Headers, limit: int) -> None:
    declared = headers.get(b"content-length")
    if declared is None:
        return
    if not (declared.isdigit() and len(declared) <= 19):  # bytes.isdigit() is ASCII only
        raise BadRequest("Content-Length must be a number of bytes")
    if int(declared) > limit:
        raise PayloadTooLarge(f"the body is {int(declared)} bytes; this route takes at most {limit}")


async def read_body(receive: Receive, limit: int | None = None) -> tuple[bytes, Message | None]:
    """The whole body (413 past `limit` bytes, counted as they arrive), or what came before a message that
    is not body (the client going away), which is then returned too so that it can be handed on."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise PayloadTooLarge(f"the body is over {limit} bytes, the most this route takes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), None


def replay(body: bytes, more: Message | None, receive: Receive) -> Receive:
    """A `receive` that first gives the body already read (and the message after it), then the real one."""
    pending: list[Message] = [{"type": "http.request", "body": body, "more_body": more is not None}]
    if more is not None:
        pending.append(more)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
