"""Schemathesis over the api's own OpenAPI document, against the real server with a real API key: whatever
it generates (within the schema and past it), no answer is a 5xx and every error has the JSON body.

Bounded: a few examples per operation, no shrinking database, so it stays well under a minute. The SSE
streams (they never end) and the multipart uploads (the hand-written probes cover those) are left out.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.generation.case import Case
from schemathesis.schemas import APIOperation

from services.api.keys import create_project

from .conftest import ApiServer

EXAMPLES_PER_OPERATION = 30


@pytest.fixture(scope="module")
def api_key(postgres_url: str, api_server: ApiServer) -> str:
    _, key = asyncio.run(create_project(postgres_url, f"schemathesis-{uuid.uuid4().hex[:8]}"))
    return key


def operations(api_server: ApiServer) -> list[APIOperation]:
    schema = schemathesis.openapi.from_url(f"{api_server.url}/openapi.json")
    schema = schema.exclude(path_regex=r"/events$")
    schema = schema.exclude(method="POST", path_regex=r"^/v1/(datasets|models)$")
    return [result.ok() for result in schema.get_all_operations()]


# Schemathesis' pytest plugin does not load under this pytest; its strategies are driven by hypothesis here.
def test_no_server_errors_and_json_error_bodies(api_server: ApiServer, api_key: str) -> None:
    found = operations(api_server)
    assert len(found) >= 10, [operation.label for operation in found]
    auth = {"Authorization": f"Bearer {api_key}"}
    for operation in found:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: Case) -> None:
            response = case.call(base_url=api_server.url, headers=auth, timeout=10)
            label = (case.method, case.formatted_path, case.query, response.text)
            assert response.status_code < 500, label
            if response.status_code >= 400:
                content_type = response.headers.get("content-type") or [""]  # every value, as a list
                assert content_type[0].startswith("application/json"), label
                assert set(response.json()) == {"error", "detail"}, label

        no_server_error()
