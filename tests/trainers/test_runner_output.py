"""The runner captures its trainer's stdout and stderr and sends them to the job as log lines: on a real
nats-server with a real events service, the runner run for real (in this process), its trainer a small
Python child (or the real Ultralytics trainer) writing what trainers write: progress bars redrawn with
carriage returns, colours, over-long lines, bytes that are not UTF-8, secrets, a traceback."""

from __future__ import annotations

import itertools
import sys

import pytest

from contracts.output import OutputLine
from contracts.reports import DoneReport, LogReport
from contracts.ultralytics import UltralyticsSpec
from services.events.testing import stored_reports
from tests.trainers.test_runner_settling import settings
from tests.trainers.test_runner_timm import dispatch, publish
from trainers import runner
from trainers.output_batch import OutputLimits

CHILD = r"""
import os, sys, time

mode = sys.argv[1]
out, err = sys.stdout, sys.stderr
if mode == "everything":
    print("epoch 1/2 starting")
    for percent in range(0, 101, 25):
        err.write(f"\r\x1b[K train: {percent}%|{'#' * (percent // 10)}|")
        err.flush()
        time.sleep(0.01)
    err.write("\n")
    print("\x1b[32mgreen text\x1b[0m")
    print("x" * 5000)
    print("token", os.environ["VTP_CALLBACK_TOKEN"], "url", os.environ["VTP_DATASET_URL"])
    print("nul a\x00b")
    out.flush()
    sys.stdout.buffer.write(b"bad \xff bytes\n")
    sys.stdout.buffer.flush()
    for n in range(12):
        print(f"  frame {n}", file=err)
    print("ValueError: boom", file=err)
    sys.exit(3)
elif mode == "spew":
    out.write("".join(f"line {n}\n" for n in range(int(sys.argv[2]))))
    out.flush()
    time.sleep(float(sys.argv[3]))
    print("after the burst")
elif mode == "reports-itself":
    from trainers.callbacks import CallbackClient
    from trainers.output_barrier import deliver_output

    print("last words", file=err)
    delivered = deliver_output()
    client = CallbackClient(os.environ["VTP_CALLBACK_URL"], os.environ["VTP_CALLBACK_TOKEN"])
    client.done("failed", f"boom (delivered: {delivered})")
    print("after done", file=err)
    sys.exit(1)
"""


@pytest.fixture
def child(monkeypatch: pytest.MonkeyPatch):
    """Make the runner's trainer the `CHILD` script, in the given mode."""

    def use(*args: object) -> None:
        command = [sys.executable, "-c", CHILD, *map(str, args)]
        monkeypatch.setattr(runner, "trainer_command", lambda framework: command)

    return use


async def run_job(platform, js, pool: str, job=None) -> tuple[list[LogReport], list[OutputLine], list]:
    job = job or dispatch(platform, pool)
    await publish(js, job)
    assert await runner.run(settings(platform, pool)) in (0, 1)
    found = [report for _, report in await stored_reports(js, job.job_id)]
    logs = [report for report in found if isinstance(report, LogReport)]
    return logs, [line for report in logs for line in report.lines or ()], found


def of_kind(reports: list, kind: type) -> list:
    return [report for report in reports if isinstance(report, kind)]


def texts(lines: list[OutputLine], stream: str) -> list[str]:
    return [line.text for line in lines if line.stream == stream]


async def test_stdout_and_stderr_arrive_as_readable_log_lines(platform, js, pool, child):
    child("everything")
    job = dispatch(platform, pool)
    logs, lines, found = await run_job(platform, js, pool, job)

    stdout, stderr = texts(lines, "stdout"), texts(lines, "stderr")
    assert stdout[0] == "epoch 1/2 starting"
    # A bar redrawn with \r is one line, as it ended (it took less than a snapshot's interval).
    assert stderr[0] == " train: 100%|##########|"
    assert "green text" in stdout
    [long] = [text for text in stdout if text.startswith("xxx")]
    assert long == "x" * 2000 + " … [3000 characters cut]"
    assert "nul ab" in stdout
    assert "bad \ufffd bytes" in stdout
    [secrets] = [text for text in stdout if text.startswith("token ")]
    assert secrets == "token [redacted] url [redacted]"
    signature = job.dataset_url.rsplit("signature=", 1)[1]
    for report in found:
        assert job.callback_token not in report.model_dump_json()
        assert signature not in report.model_dump_json()
    assert not [text for text in stdout + stderr if "\r" in text or "\x1b" in text]
    for report in logs:
        assert report.level == "info"
        assert report.message.startswith("trainer output: ")

    # The trainer said nothing itself: the runner's reason ends with the last lines of its stderr.
    [done] = of_kind(found, DoneReport)
    assert found[-1] == done
    tail = [f"  frame {n}" for n in range(3, 12)] + ["ValueError: boom"]
    assert done.reason == "trainer exited with code 3; the last lines of its stderr:\n" + "\n".join(tail)


async def test_output_past_the_attempts_cap_is_dropped_and_said(platform, js, pool, child, monkeypatch):
    monkeypatch.setattr(runner, "OUTPUT_LIMITS", OutputLimits(max_lines=50))
    child("spew", 200, 0)
    _, lines, _ = await run_job(platform, js, pool)
    assert texts(lines, "stdout") == [f"line {n}" for n in range(50)]
    assert texts(lines, "runner") == [
        "output cap reached (50 lines or 4 MiB an attempt): later output is dropped",
        "151 lines of output dropped after the cap",  # 150 lines, and the one after the burst
    ]


async def test_a_burst_past_the_rate_limit_is_dropped_and_said(platform, js, pool, child, monkeypatch):
    limits = OutputLimits(batch_lines=10, buffer_lines=20, flush_every=0.5)
    monkeypatch.setattr(runner, "OUTPUT_LIMITS", limits)
    child("spew", 100, 1.0)  # one write of 100 lines: 20 wait their turn, 80 find no room
    logs, lines, _ = await run_job(platform, js, pool)
    assert [(line.stream, line.text) for line in lines] == [
        *(("stdout", f"line {n}") for n in range(20)),
        ("runner", "80 lines of output dropped (more than 20 lines a second)"),
        ("stdout", "after the burst"),
    ]
    # Batched: 10 lines a callback, one callback every half second at most.
    assert [len(report.lines or ()) for report in logs] == [10, 10, 2]
    gaps = [(b.time - a.time).total_seconds() for a, b in itertools.pairwise(logs)]
    assert min(gaps) >= 0.45, gaps


async def test_a_trainer_reporting_done_has_its_output_delivered_first(platform, js, pool, child):
    child("reports-itself")
    _, _, found = await run_job(platform, js, pool)
    [done] = of_kind(found, DoneReport)
    assert done.reason == "boom (delivered: True)"  # the runner's own done came later: a duplicate
    before = found[: found.index(done)]
    assert "last words" in [line.text for report in of_kind(before, LogReport) for line in report.lines or ()]


async def test_ultralytics_progress_reads_as_lines(platform, js, pool, yolo_datasets):
    """The real Ultralytics trainer: its own output (the model summary, each epoch's bars, validation)
    arrives as readable lines, each bar once, with no terminal escapes."""
    dataset = yolo_datasets["yolo-detect"]
    job = dispatch(platform, pool)
    job = job.model_copy(
        update={
            "spec": UltralyticsSpec(
                framework="ultralytics",
                task="detect",
                model="yolo11n.yaml",
                hyperparameters={"epochs": 1, "imgsz": 64, "batch": 8, "mosaic": 0.0},
            ),
            "dataset_url": platform.signer.sign(dataset.key, "GET", 600),
            "dataset_format": dataset.format,
        }
    )
    _, lines, found = await run_job(platform, js, pool, job)
    [done] = of_kind(found, DoneReport)
    assert done.status == "succeeded"
    shown = [line.text for line in lines]
    assert not [text for text in shown if "\r" in text or "\x1b" in text]
    epoch_bars = [text for text in shown if text.lstrip().startswith("1/1") and "100%" in text]
    assert len(epoch_bars) == 1, shown
    assert any("Class" in text and "mAP50" in text for text in shown), shown
    assert len(shown) < 300, len(shown)
