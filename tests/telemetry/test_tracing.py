"""One trace per job, end to end: a real `vtp up` exporting to an OTLP/HTTP receiver in the test, one timm
job trained. Its spans come from every part (api, scheduler, events, runner, trainer), all under the job's
`trace_id`, each reaching the one root (the submit request's span) through parents that were all exported;
and every log line that names the job carries its trace id."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from telemetry import tracing
from tests.e2e.helpers import (
    FAST_TIMERS,
    SMALL_VALIDATION_LIMITS,
    Platform,
    job_request,
    submit,
    upload_dataset,
    wait_for_trainer,
)
from tests.telemetry.otlp_receiver import OtlpReceiver, ReceivedSpan
from vtp.embedded.nats_server import start_nats_server
from vtp.embedded.ports import free_port
from vtp.launch import launch

SERVER = 2  # OTLP's SpanKind.SPAN_KIND_SERVER
NEEDED = {"vtp-api", "vtp-scheduler", "vtp-events", "vtp-trainer"}


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def traced_platform(
    session_dir: Path, receiver: OtlpReceiver, database_url_for: Callable[[str], str]
) -> Iterator[Platform]:
    """`vtp up` with tracing on, on a nats-server of its own: no other suite's platform shares its streams."""
    nats = start_nats_server(session_dir / "nats-tracing")
    env = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    env.update(
        FAST_TIMERS,
        **SMALL_VALIDATION_LIMITS,
        NATS_URL=nats.url,
        NATS_MONITOR_URL=nats.monitor_url,
        DATABASE_URL=database_url_for("vtp_tracing"),
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="100",
        VTP_LOG_FORMAT="json",
    )
    root = session_dir / "tracing"
    root.mkdir()
    launched = launch(root / "platform", free_port(), env, root / "vtp-up.log")
    platform = Platform(**vars(launched))
    yield platform
    try:
        assert platform.stop(30) == 0, "vtp up did not exit cleanly on SIGINT"
    finally:
        nats.stop()


def wait_succeeded(platform: Platform, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    with platform.client() as client:
        while True:
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["state"] in ("SUCCEEDED", "FAILED", "CANCELLED"):
                return dict(job)
            assert time.monotonic() < deadline, f"job {job_id} still {job['state']}"
            time.sleep(0.3)


def broken_links(spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    """Spans whose parent was not exported (roots excepted)."""
    ids = {span.span_id for span in spans}
    return [span for span in spans if span.parent_span_id and span.parent_span_id not in ids]


def complete_trace(receiver: OtlpReceiver, trace_id: str, timeout: float = 30) -> list[ReceivedSpan]:
    """The job's spans once every part's are in and no parent is missing (short-lived processes flush at
    exit; the services every 100 ms)."""
    deadline = time.monotonic() + timeout
    while True:
        spans = receiver.of_trace(trace_id)
        services = {span.service for span in spans}
        has_pool_or_runner = bool(services & {"vtp-pool", "vtp-runner"})
        if NEEDED <= services and has_pool_or_runner and not broken_links(spans):
            time.sleep(0.5)  # what the last batch still held
            return receiver.of_trace(trace_id)
        if time.monotonic() > deadline:
            return spans
        time.sleep(0.2)


@pytest.fixture(scope="module")
def dataset_id(traced_platform: Platform, session_dir: Path) -> str:
    from vtp.synthetic import make_imagefolder_archive

    archive = make_imagefolder_archive(session_dir / "tracing-shapes.zip", train_per_class=4, val_per_class=2)
    return upload_dataset(traced_platform, archive, "imagefolder")


def test_one_job_is_one_trace_from_submit_to_last_report(
    traced_platform: Platform, receiver: OtlpReceiver, dataset_id: str
) -> None:
    job = submit(traced_platform, job_request(dataset_id, epochs=1))
    done = wait_succeeded(traced_platform, job["id"])
    assert done["state"] == "SUCCEEDED", done
    trace_id = job["trace_id"]

    spans = complete_trace(receiver, trace_id)
    services = {span.service for span in spans}
    assert services >= NEEDED, services
    assert services & {"vtp-pool", "vtp-runner"}, services
    assert broken_links(spans) == []
    [root] = [span for span in spans if not span.parent_span_id]
    assert (root.service, root.kind, root.name) == ("vtp-api", SERVER, "POST /v1/jobs")
    # The request span opened the job's trace, so it is the job's first span (the id every part derives):
    # no second span for the submit.
    assert root.span_id == f"{tracing.job_span_id(trace_id):016x}"
    assert root.attributes.get("vtp.job_id") == job["id"]
    assert not [span for span in spans if span.name == "publish submit"]
    # Every span about the job is in its trace: none started a trace of its own.
    about_the_job = [span for span in receiver.all() if span.attributes.get("vtp.job_id") == job["id"]]
    assert {span.trace_id for span in about_the_job} == {trace_id}

    # Signed storage URLs are requested under the job's spans: no span keeps a signature.
    assert [s for s in receiver.all() if any("signature=" in str(v) for v in s.attributes.values())] == []

    names = {(span.service, span.name) for span in spans}
    assert ("vtp-trainer", "train") in names
    assert ("vtp-trainer", "epoch") in names
    assert ("vtp-trainer", "upload model.pt") in names
    assert ("vtp-runner", "run attempt") in names
    assert ("vtp-scheduler", "apply submit") in names
    assert ("vtp-scheduler", "dispatch") in names
    assert ("vtp-scheduler", "apply report.done") in names
    assert any(span.service == "vtp-events" and span.kind == SERVER for span in spans)
    [trainer] = [span for span in spans if span.name == "train"]
    assert trainer.resource.get("vtp.framework") == "timm"
    assert trainer.attributes.get("vtp.attempt") == 1
    [runner] = [span for span in spans if span.name == "run attempt"]
    assert runner.resource.get("vtp.pool") == "local"
    assert trainer.parent_span_id == runner.span_id
    # The pool's span that started the runner: a trace of its own, linked from the runner's.
    started = [span for span in receiver.all() if span.service == "vtp-pool" and span.name == "start runner"]
    assert {(span.trace_id, span.span_id) for span in started} & set(runner.links)

    assert_logs_carry_the_trace(traced_platform, job["id"], trace_id)


def test_a_retry_is_in_the_same_trace_under_its_attempt(
    traced_platform: Platform, receiver: OtlpReceiver, dataset_id: str
) -> None:
    """The retry is started by the scheduler's clock (no message, no incoming context): its spans still
    reach the job's root, through the job's first span."""
    job = submit(traced_platform, job_request(dataset_id, epochs=1, max_attempts=2))
    wait_for_trainer(job["id"], 1).send_signal(signal.SIGKILL)
    done = wait_succeeded(traced_platform, job["id"])
    assert (done["state"], done["attempt"]) == ("SUCCEEDED", 2), done

    spans = complete_trace(receiver, job["trace_id"])
    assert broken_links(spans) == []
    assert len([span for span in spans if not span.parent_span_id]) == 1
    attempts = {(span.name, span.attributes.get("vtp.attempt")) for span in spans}
    assert {("run attempt", 1), ("run attempt", 2), ("train", 2)} <= attempts
    [retry] = [span for span in spans if span.name == "dispatch" and span.attributes["vtp.attempt"] == 2]
    [tick] = [span for span in spans if span.span_id == retry.parent_span_id]
    assert tick.name == "apply tick"
    assert_logs_carry_the_trace(traced_platform, job["id"], job["trace_id"])


def assert_logs_carry_the_trace(platform: Platform, job_id: str, trace_id: str) -> None:
    files = [*sorted((platform.data_dir / "logs").glob("*.log")), platform.data_dir.parent / "vtp-up.log"]
    naming, plain, wrong = 0, [], []
    for path in files:
        for line in path.read_text(errors="replace").splitlines():
            if job_id not in line:
                continue
            naming += 1
            try:
                entry = json.loads(line)
            except ValueError:
                plain.append(f"{path.name}: {line}")
                continue
            if entry.get("trace_id") != trace_id:
                wrong.append(f"{path.name}: {line}")
    assert naming > 0, "no log line names the job"
    assert plain == [], "log lines that are not JSON:\n" + "\n".join(plain[:20])
    assert wrong == [], "log lines without the job's trace id:\n" + "\n".join(wrong[:20])
