"""A done callback's `retryable` reaches the scheduler's report unchanged; unsaid, it is true (as every done
was before the field existed). Real HTTP to a real events service, the report read from VTP_REPORTS."""

from __future__ import annotations

import uuid

import httpx
import pytest

from contracts.reports import DoneReport
from services.events.testing import stored_reports


async def post_done(url: str, token: str, body: dict) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post(
            "/v1/callbacks/done", json=body, headers={"Authorization": f"Bearer {token}"}
        )


@pytest.mark.parametrize(
    ("body", "retryable"),
    [
        ({"status": "failed", "reason": "RuntimeError: Unknown model (x)", "retryable": False}, False),
        ({"status": "failed", "reason": "trainer exited with status 1"}, True),
        ({"status": "failed", "reason": "boom", "retryable": True}, True),
    ],
    ids=["not-retryable", "unsaid", "retryable"],
)
async def test_done_carries_retryable_to_the_report(events_service, js, body, retryable):
    job_id = uuid.uuid4().hex
    response = await post_done(events_service.url, events_service.token(job_id), body)
    assert response.status_code == 202, response.text
    [(_, report)] = await stored_reports(js, job_id)
    assert isinstance(report, DoneReport)
    assert (report.status, report.reason, report.retryable) == ("failed", body["reason"], retryable)


async def test_retryable_must_be_a_boolean(events_service, js):
    job_id = uuid.uuid4().hex
    body = {"status": "failed", "retryable": "maybe"}
    response = await post_done(events_service.url, events_service.token(job_id), body)
    assert response.status_code == 422
    assert await stored_reports(js, job_id) == []
