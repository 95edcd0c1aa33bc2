"""A lean HTTP/1.1 keep-alive client for load generation.

httpx spends about 1.4 ms of CPU per request here, so on a 2-core machine it would measure itself. This client
writes pre-built request bytes on persistent connections and parses only the status line, the headers it needs
and a Content-Length body: enough for our JSON API, and cheap enough that the platform is what gets measured.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class LeanConnection:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def request(self, method: str, path: str, body: bytes = b"", extra: str = "") -> Response:
        reused = self._writer is not None
        try:
            return await self._exchange(method, path, body, extra)
        except ConnectionError:
            if not reused:
                raise
            # The server closed an idle keep-alive connection before reading this request: send it again.
            return await self._exchange(method, path, body, extra)

    async def _exchange(self, method: str, path: str, body: bytes, extra: str) -> Response:
        reader, writer = await self._connect()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._fixed_headers}{extra}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        status_line = await reader.readline()
        if not status_line:
            writer.close()
            self._reader = self._writer = None
            raise ConnectionError("server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.strip().lower() == b"close":
                close = True
        payload = await reader.readexactly(length) if length else b""
        if close:
            writer.close()
            self._reader = self._writer = None
        return Response(status, payload)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None


async def open_sse(
    url: str, path: str, headers: dict[str, str]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a server-sent-events stream; return the reader positioned at the first event, and the writer,
    which the caller must keep: a collected writer closes the connection and the server ends the stream."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    fixed = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: {parts.hostname}\r\nAccept: text/event-stream\r\n{fixed}\r\n".encode()
    )
    status_line = await reader.readline()
    if b" 200 " not in status_line:
        raise ConnectionError(f"SSE connect failed: {status_line!r}")
    while await reader.readline() not in (b"\r\n", b""):
        pass  # skip the response headers
    return reader, writer
