"""The events service's optional access log names method, path and status, never the query string (it
holds storage signatures)."""

from __future__ import annotations

import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from services.events.app import NotedAnswers


async def test_the_access_log_leaves_out_query_strings(caplog: pytest.LogCaptureFixture) -> None:
    async def download(request):  # type: ignore[no-untyped-def]
        return PlainTextResponse("nope", status_code=403)

    routes = [Route("/v1/storage/{key:path}", download)]
    app = NotedAnswers(Starlette(routes=routes), access_log=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://events") as client:
        with caplog.at_level(logging.INFO, logger="services.events.app"):
            response = await client.get("/v1/storage/datasets/d1/a.zip?expires=1&signature=s3cr3t")
    assert response.status_code == 403
    assert [record.getMessage() for record in caplog.records] == ["GET /v1/storage/datasets/d1/a.zip 403"]
