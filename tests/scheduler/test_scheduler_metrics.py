"""The scheduler's metrics, counted from committed decisions, on a real nats-server and Postgres: inputs by
kind and outcome, a job's queue and run times from its own inputs' times, its end, its epochs; and the
small HTTP endpoint its probes use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from nats.js import JetStreamContext
from prometheus_client import REGISTRY
from scheduler_factories import done, heartbeat, progress, submit
from scheduler_helpers import new_pool, publish, wait_events

from contracts import subjects
from services.scheduler import repository


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_job_is_counted_once_from_its_inputs_times(start_scheduler, js: JetStreamContext) -> None:
    app = await start_scheduler(metrics_port=0, metrics_host="127.0.0.1")
    pool = new_pool()
    applied_before = sample("vtp_scheduler_inputs_total", kind="submit", outcome="applied")
    # Times from now: with the factories' fixed times the ticker would find the heartbeat long overdue.
    start = datetime.now(UTC)

    def at(report, seconds: float):  # type: ignore[no-untyped-def]
        field = "submitted_at" if hasattr(report, "submitted_at") else "time"
        return report.model_copy(update={field: start + timedelta(seconds=seconds)})

    command = at(submit(pool=pool), 0)
    await publish(js, subjects.SUBMIT_JOB, command, msg_id=command.job_id)
    await wait_events(js, command.job_id, 2)
    assert app.engine is not None
    async with app.engine.connect() as conn:
        assert (await repository.queued_per_pool(conn))[pool] == 1

    job_id = command.job_id
    epoch = at(progress(job_id), 7).model_copy(update={"epoch_seconds": 2.5})
    # One at a time: the scheduler applies inputs in parallel batches, and any report starts the job.
    for count, kind, report in ((3, "heartbeat", at(heartbeat(job_id), 4)), (4, "progress", epoch)):
        await publish(js, subjects.report_subject(job_id, kind), report)
        await wait_events(js, job_id, count)
    await publish(js, subjects.report_subject(job_id, "done"), at(done(job_id), 10))
    await wait_events(js, job_id, 5)

    labels = {"framework": "timm", "pool": pool}
    assert sample("vtp_scheduler_inputs_total", kind="submit", outcome="applied") == applied_before + 1
    assert sample("vtp_job_queue_seconds_count", **labels) == 1
    assert sample("vtp_job_queue_seconds_sum", **labels) == 4.0  # submitted at 0, running at 4
    assert sample("vtp_job_run_seconds_sum", **labels) == 6.0  # running at 4, done at 10
    assert sample("vtp_jobs_finished_total", state="succeeded", **labels) == 1
    assert sample("vtp_epoch_seconds_count", framework="timm") >= 1

    assert app._metrics_server is not None
    url = f"http://127.0.0.1:{app._metrics_server.server_port}"
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{url}/healthz")).status_code == 200
        assert (await client.get(f"{url}/readyz")).status_code == 200
        scraped = (await client.get(f"{url}/metrics")).text
    assert f'vtp_jobs_finished_total{{framework="timm",pool="{pool}",state="succeeded"}} 1.0' in scraped
