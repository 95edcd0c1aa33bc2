"""A batch of a trainer's output over real HTTP to a real events service: one report carrying its lines,
recorded once however often its callback is retried; lines Postgres could not store refused where they
enter."""

from __future__ import annotations

from contracts.reports import LogReport
from services.events.testing import stored_reports
from tests.events.test_events_callbacks import new_job, post

BATCH = {
    "message": "trainer output: 2 lines (stdout 1, stderr 1)",
    "lines": [{"stream": "stdout", "text": "epoch 1/2"}, {"stream": "stderr", "text": "warning: slow"}],
    "batch_id": "a1b2c3-1",
}


async def test_a_batch_is_one_report_with_its_lines_and_a_retry_counts_once(events_service, js):
    job_id = new_job()
    token = events_service.token(job_id)
    for _ in range(2):  # the second: a retry after an answer that was lost
        assert (await post(events_service.url, "log", token, BATCH)).status_code == 202
    second = {**BATCH, "batch_id": "a1b2c3-2", "lines": [{"stream": "runner", "text": "3 lines dropped"}]}
    assert (await post(events_service.url, "log", token, second)).status_code == 202

    reports = [report for _, report in await stored_reports(js, job_id)]
    assert all(isinstance(report, LogReport) for report in reports)
    assert [[(line.stream, line.text) for line in report.lines or ()] for report in reports] == [
        [("stdout", "epoch 1/2"), ("stderr", "warning: slow")],
        [("runner", "3 lines dropped")],
    ]
    assert reports[0].message == BATCH["message"]


async def test_unstorable_or_unknown_lines_are_refused(events_service, js):
    job_id = new_job()
    token = events_service.token(job_id)
    for line, field in (
        ({"stream": "stdout", "text": "a\x00b"}, "text"),
        ({"stream": "stdin", "text": "x"}, "stream"),
        ({"stream": "stdout", "text": "x" * 10_001}, "text"),
    ):
        response = await post(events_service.url, "log", token, {**BATCH, "lines": [line]})
        assert response.status_code == 422, line
        assert response.json()["detail"][0]["loc"] == ["body", "lines", 0, field]
    bad_id = await post(events_service.url, "log", token, {**BATCH, "batch_id": "no spaces"})
    assert bad_id.status_code == 422
    assert await stored_reports(js, job_id) == []
