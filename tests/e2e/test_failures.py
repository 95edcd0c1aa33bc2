"""End-to-end: a failure another attempt cannot help fails the job once, at attempt 1, with attempts left and
a reason naming the error; REST -> scheduler -> local pool -> runner -> real timm trainer -> events -> SSE."""

from __future__ import annotations

from tests.e2e.helpers import Platform, job_request, sse_events, submit


def test_an_unknown_timm_model_fails_once_at_attempt_1(platform: Platform, dataset_id: str) -> None:
    job = submit(platform, job_request(dataset_id, epochs=1, model="no_such_model", max_attempts=3))
    with platform.client() as client:
        events = list(sse_events(client, f"/v1/jobs/{job['id']}/events"))
        types = [event.event for event in events]
        assert types[:3] == ["job.submitted", "job.queued", "job.running"], types
        assert types[-1] == "job.failed", types
        assert "job.retrying" not in types
        assert {event.data["attempt"] for event in events} == {1}
        failed = events[-1].data["payload"]
        assert failed["retryable"] is False
        # The reason names the error's class and message (timm's own), and what to do about it.
        assert failed["reason"].startswith("RuntimeError: Unknown model (no_such_model); use a model name")

        shown = client.get(f"/v1/jobs/{job['id']}").json()
        assert (shown["state"], shown["attempt"], shown["max_attempts"]) == ("FAILED", 1, 3)
        assert shown["reason"] == failed["reason"]
