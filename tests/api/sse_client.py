"""A minimal Server-Sent Events reader for tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import httpx


@dataclass
class Sse:
    id: int
    event: str
    data: dict[str, Any]


class SseReader:
    """Reads events from one streamed response; comments (keep-alives) and `retry:` lines are skipped."""

    def __init__(self, response: httpx.Response) -> None:
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        self._lines = response.aiter_lines()
        self.ended = False

    async def ready(self) -> None:
        """Wait for the preamble (`retry:`), which the server sends once the client is registered for live
        events."""
        async for line in self._lines:
            if line.startswith("retry:"):
                return
        raise AssertionError("stream ended before its preamble")

    async def next(self) -> Sse | None:
        """The next event, or None when the server ended the stream."""
        fields: dict[str, str] = {}
        async for line in self._lines:
            if line == "":
                if "data" in fields:
                    return Sse(id=int(fields["id"]), event=fields["event"], data=json.loads(fields["data"]))
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
        self.ended = True
        return None

    async def take(self, count: int) -> list[Sse]:
        received = []
        for _ in range(count):
            event = await self.next()
            assert event is not None, f"stream ended after {len(received)} of {count} events"
            received.append(event)
        return received

    async def rest(self) -> list[Sse]:
        """Every event until the server closes the stream."""
        received = []
        while (event := await self.next()) is not None:
            received.append(event)
        return received
