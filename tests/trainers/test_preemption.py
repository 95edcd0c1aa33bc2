"""Preemption, the trainer's side: SIGTERM stops a real timm or YOLO trainer at the next batch, the job's
last.pt holds the latest epoch completed (loadable by the resume code, and a next run resumes from it),
`done` says preempted and why, and the trainer exits 0 within `VTP_PREEMPT_GRACE`; a SIGTERM before any
epoch saves nothing. The grace is kept when saving cannot finish (a checkpoint given up, a watchdog for a
trainer that does not stop), and the variable reaches the trainer through the pool and the runner."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from contracts import subjects
from contracts.dispatch import DispatchJob
from contracts.jobs import Hyperparameters, TimmSpec
from contracts.reports import ArtifactReport, DoneReport, HeartbeatReport, LogReport, ProgressReport
from messaging import nats as common_nats
from services.common import storage, tokens
from services.events.testing import stored_reports
from trainers.outcome import preempted_reason
from trainers.pool import pool_environ
from trainers.resume import Progress
from trainers.runner import PASSTHROUGH, PASSTHROUGH_PREFIXES, passed_to_trainer

GRACE = 20.0  # seconds; what the trainers get as VTP_PREEMPT_GRACE in these tests
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def of_kind(found, kind):
    return [report for _, report in found if isinstance(report, kind)]


def trainer_environ(platform, job_id: str, spec: dict, dataset_key: str, dataset_format: str, **extra):
    """The environment a runner gives a trainer (its passthrough of this process's own, the job's)."""
    env = {k: v for k, v in os.environ.items() if k in PASSTHROUGH or k.startswith(PASSTHROUGH_PREFIXES)}
    return env | {
        "PYTHONUNBUFFERED": "1",
        "VTP_JOB_ID": job_id,
        "VTP_ATTEMPT": "1",
        "VTP_CALLBACK_URL": f"{platform.events_url}/v1/callbacks",
        "VTP_CALLBACK_TOKEN": platform.token(job_id),
        "VTP_JOB_SPEC": json.dumps(spec),
        "VTP_DATASET_URL": platform.signer.sign(dataset_key, "GET", 600),
        "VTP_DATASET_FORMAT": dataset_format,
        "VTP_HEARTBEAT_INTERVAL": "0.2",
        "VTP_PREEMPT_GRACE": str(GRACE),
        "TRACEPARENT": TRACEPARENT,
        **extra,
    }


def next_run(platform, job_id: str) -> dict[str, str]:
    """What the scheduler gives the next run of a preempted attempt: a token naming the run (its reports are
    told apart from the preempted run's), and the job's last.pt to resume from."""
    return {
        "VTP_CALLBACK_TOKEN": tokens.mint(platform.private_key_pem, job_id, 1, 600, run=1),
        "VTP_RESUME_URL": platform.signer.sign(storage.artifact_key(job_id, "last.pt"), "GET", 600),
    }


class Trainer:
    """`python -m trainers.<framework>` as a runner starts it, its stderr kept in a file."""

    def __init__(self, framework: str, env: dict[str, str], stderr: Path) -> None:
        self.framework, self.env, self.stderr_path = framework, env, stderr
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> Trainer:
        with self.stderr_path.open("wb") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", f"trainers.{self.framework}", env=self.env, stderr=stderr
            )
        return self

    async def sigterm_when(self, js, job_id: str, ready, within: float = 120) -> float:
        """SIGTERM once `ready(reports)`; when it was sent (time.monotonic())."""
        assert self.process is not None
        deadline = time.monotonic() + within
        while not ready(await stored_reports(js, job_id)):
            assert time.monotonic() < deadline, "the trainer never got there"
            assert self.process.returncode is None, self.stderr()[-3000:]
            await asyncio.sleep(0.05)
        self.process.send_signal(signal.SIGTERM)
        return time.monotonic()

    async def exit_status(self, within: float) -> int:
        assert self.process is not None
        return await asyncio.wait_for(self.process.wait(), within)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def saving(self) -> str:
        """What its preemption's save cost, as it logged it."""
        [line] = [line for line in self.stderr().splitlines() if "to save)" in line]
        return line.split("preempted: ")[-1].split('"')[0]


def timm_spec(epochs: int = 4) -> dict:
    # 36 images of 64 px in batches of 4: an epoch of 9 batches, a couple of seconds on 2 cores.
    hyperparameters = {"epochs": epochs, "batch_size": 4, "image_size": 64, "learning_rate": 0.003}
    return {"framework": "timm", "task": "classify", "model": "resnet18", "hyperparameters": hyperparameters}


def progressed(epoch: int):
    return lambda found: any(p.epoch >= epoch for p in of_kind(found, ProgressReport))


def saved_checkpoint(platform, job_id: str, tmp_path: Path) -> Path:
    """A copy of the job's last.pt (the resume code consumes what it reads)."""
    return Path(shutil.copy(platform.artifact_path(job_id, "last.pt"), tmp_path / f"{job_id}-last.pt"))


async def test_sigterm_in_epoch_2_saves_the_epoch_before_and_reports_preempted(platform, js, tmp_path):
    from trainers.timm.checkpoint import read

    job_id = uuid.uuid4().hex
    env = trainer_environ(platform, job_id, timm_spec(), platform.dataset_key, "imagefolder")
    trainer = await Trainer("timm", env, tmp_path / "stderr").start()
    sent = await trainer.sigterm_when(js, job_id, progressed(1))
    assert await trainer.exit_status(GRACE) == 0
    exited = time.monotonic() - sent

    found = await stored_reports(js, job_id)
    progress = of_kind(found, ProgressReport)
    completed = len(progress)
    assert 1 <= completed < 4
    assert [p.epoch for p in progress] == list(range(1, completed + 1))
    [done] = of_kind(found, DoneReport)
    assert found[-1][1] == done
    assert (done.status, done.reason) == ("preempted", f"preempted by SIGTERM after epoch {completed}")
    assert done.metrics == {"epochs": completed}
    # Checkpoints only (no model.pt of an unfinished job), the last one of the epoch completed.
    assert {a.name for a in of_kind(found, ArtifactReport)} == {"last.pt"}
    checkpoint = read(saved_checkpoint(platform, job_id, tmp_path), TimmSpec.model_validate(timm_spec()))
    assert (checkpoint.epoch, checkpoint.epochs) == (completed, 4)
    assert checkpoint.metrics == progress[-1].metrics
    print(f"timm: SIGTERM in epoch {completed + 1} -> exit {exited:.2f} s; {trainer.saving()}")

    # The next run of the job (the same attempt) resumes after that epoch and finishes.
    env |= next_run(platform, job_id)
    assert await (await Trainer("timm", env, tmp_path / "stderr2").start()).exit_status(120) == 0
    found = await stored_reports(js, job_id)
    resumed = of_kind(found, ProgressReport)[completed:]
    assert [(p.epoch, p.resumed_from_epoch) for p in resumed][:1] == [(completed + 1, completed)]
    assert [p.epoch for p in resumed] == list(range(completed + 1, 5))
    assert [d.status for d in of_kind(found, DoneReport)] == ["preempted", "succeeded"]


async def test_a_checkpoint_the_budget_skipped_is_saved_on_sigterm(platform, js, tmp_path):
    """Checkpoint budget 0: only epoch 1 is uploaded while training; SIGTERM after epoch 2 uploads the
    state training stopped in, labelled with the latest epoch completed."""
    from trainers.timm.checkpoint import read

    job_id = uuid.uuid4().hex
    env = trainer_environ(
        platform, job_id, timm_spec(), platform.dataset_key, "imagefolder", VTP_CHECKPOINT_BUDGET="0"
    )
    trainer = await Trainer("timm", env, tmp_path / "stderr").start()
    sent = await trainer.sigterm_when(js, job_id, progressed(2))
    assert await trainer.exit_status(GRACE) == 0
    exited = time.monotonic() - sent

    found = await stored_reports(js, job_id)
    completed = len(of_kind(found, ProgressReport))
    assert 2 <= completed < 4
    [done] = of_kind(found, DoneReport)
    assert (done.status, done.reason) == ("preempted", f"preempted by SIGTERM after epoch {completed}")
    assert [a.name for a in of_kind(found, ArtifactReport)] == ["last.pt", "last.pt"]  # epoch 1, then K
    checkpoint = read(saved_checkpoint(platform, job_id, tmp_path), TimmSpec.model_validate(timm_spec()))
    assert checkpoint.epoch == completed
    print(f"timm, skipped checkpoint: SIGTERM -> exit {exited:.2f} s; {trainer.saving()}")


async def test_sigterm_before_the_first_epoch_saves_nothing(platform, js, tmp_path):
    job_id = uuid.uuid4().hex
    env = trainer_environ(platform, job_id, timm_spec(), platform.dataset_key, "imagefolder")
    trainer = await Trainer("timm", env, tmp_path / "stderr").start()
    # Its first heartbeat: the trainer is up (the handler is in place before the first beat).
    sent = await trainer.sigterm_when(js, job_id, lambda found: of_kind(found, HeartbeatReport))
    assert await trainer.exit_status(GRACE) == 0
    exited = time.monotonic() - sent

    found = await stored_reports(js, job_id)
    assert of_kind(found, ProgressReport) == []
    assert of_kind(found, ArtifactReport) == []
    [done] = of_kind(found, DoneReport)
    assert done.status == "preempted"
    assert done.reason in {
        "preempted by SIGTERM before training started",
        "preempted by SIGTERM before the first epoch ended",
    }
    assert not platform.artifact_path(job_id, "last.pt").exists()
    print(f"timm, before any epoch: SIGTERM -> exit {exited:.2f} s ({done.reason})")


@pytest.mark.parametrize("framework", ["timm", "ultralytics"])
async def test_sigterm_after_the_last_epoch_lets_the_job_finish_within_the_grace(
    platform, js, yolo_datasets, tmp_path, framework
):
    """Training is over: the uploads and the exports go on, and the job succeeds."""
    job_id = uuid.uuid4().hex
    if framework == "timm":
        spec = timm_spec(epochs=1) | {"export": ["onnx", "torchscript"]}
        env = trainer_environ(platform, job_id, spec, platform.dataset_key, "imagefolder")
        exports = {"model.onnx", "model.torchscript"}
    else:
        dataset = yolo_datasets["yolo-detect"]
        hyperparameters = {"epochs": 1, "imgsz": 64, "batch": 8, "mosaic": 0.0}
        spec = {"framework": "ultralytics", "task": "detect", "model": "yolo11n.yaml"}
        spec |= {"hyperparameters": hyperparameters, "export": ["onnx", "torchscript"]}
        env = trainer_environ(platform, job_id, spec, dataset.key, dataset.format)
        exports = {"best.onnx", "best.torchscript"}
    trainer = await Trainer(framework, env, tmp_path / "stderr").start()
    sent = await trainer.sigterm_when(js, job_id, progressed(1))
    assert await trainer.exit_status(GRACE) == 0
    exited = time.monotonic() - sent
    found = await stored_reports(js, job_id)
    [done] = of_kind(found, DoneReport)
    assert done.status == "succeeded"
    assert "export_failed" not in done.metrics
    assert exports <= {a.name for a in of_kind(found, ArtifactReport)}
    assert "SIGTERM: preempted" in trainer.stderr()  # it was still at its end when the signal came
    print(f"{framework}: SIGTERM after the last epoch -> succeeded, exit {exited:.2f} s")


READ_RESUME_POINT = """
import sys
from pathlib import Path
from trainers.ultralytics.resume import read_resume_point
point = read_resume_point(Path(sys.argv[1]))
print(point.epoch, point.epochs)
"""


def resume_point_of(checkpoint: Path) -> tuple[int, int]:
    """(epoch, epochs) of an Ultralytics checkpoint, read in a process of its own: unpickling one imports
    ultralytics, which patches PIL's `Image.open` for the rest of the process (and the tests after this)."""
    command = [sys.executable, "-c", READ_RESUME_POINT, str(checkpoint)]
    epoch, epochs = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return int(epoch), int(epochs)


@pytest.mark.parametrize("budget", ["1", "0"])
async def test_yolo_sigterm_uploads_its_last_pt_of_the_epoch_before(
    platform, js, yolo_datasets, tmp_path, budget
):
    """Budget 1: every epoch's last.pt is uploaded, SIGTERM in epoch 2. Budget 0: only epoch 1's, SIGTERM
    after epoch 2: the preemption uploads Ultralytics' last.pt, still the completed epoch's."""
    dataset = yolo_datasets["yolo-detect"]
    hyperparameters = {"epochs": 4, "imgsz": 64, "batch": 4, "mosaic": 0.0, "seed": 0}
    spec = {"framework": "ultralytics", "task": "detect", "model": "yolo11n.yaml"}
    spec["hyperparameters"] = hyperparameters
    job_id = uuid.uuid4().hex
    env = trainer_environ(platform, job_id, spec, dataset.key, dataset.format, VTP_CHECKPOINT_BUDGET=budget)
    trainer = await Trainer("ultralytics", env, tmp_path / "stderr").start()
    sent = await trainer.sigterm_when(js, job_id, progressed(1 if budget == "1" else 2))
    assert await trainer.exit_status(GRACE) == 0
    exited = time.monotonic() - sent

    found = await stored_reports(js, job_id)
    completed = len(of_kind(found, ProgressReport))
    assert (1 if budget == "1" else 2) <= completed < 4
    [done] = of_kind(found, DoneReport)
    assert found[-1][1] == done
    assert (done.status, done.reason) == ("preempted", f"preempted by SIGTERM after epoch {completed}")
    # Ultralytics' own last.pt of that epoch, optimizer and all; nothing of the unfinished run's end.
    uploaded = [a.name for a in of_kind(found, ArtifactReport)]
    assert uploaded == ["last.pt"] * (completed if budget == "1" else 2)
    assert resume_point_of(saved_checkpoint(platform, job_id, tmp_path)) == (completed, 4)
    print(f"yolo, budget {budget}: SIGTERM after epoch {completed} -> {exited:.2f} s; {trainer.saving()}")

    env |= next_run(platform, job_id)
    assert await (await Trainer("ultralytics", env, tmp_path / "stderr2").start()).exit_status(120) == 0
    found = await stored_reports(js, job_id)
    resumed = of_kind(found, ProgressReport)[completed:]
    assert [p.epoch for p in resumed] == list(range(completed + 1, 5))
    assert resumed[0].resumed_from_epoch == completed
    assert [d.status for d in of_kind(found, DoneReport)] == ["preempted", "succeeded"]


async def test_the_runner_passes_sigterm_and_the_grace_on_and_acks_a_preempted_job(
    platform, js, pool, tmp_path
):
    job_id = uuid.uuid4().hex
    spec = TimmSpec.model_validate(timm_spec(epochs=50))
    job = DispatchJob(
        job_id=job_id,
        attempt=1,
        pool=pool,
        spec=spec,
        callback_url=f"{platform.events_url}/v1/callbacks",
        callback_token=platform.token(job_id),
        dataset_url=platform.signer.sign(platform.dataset_key, "GET", 600),
        dataset_format="imagefolder",
        trace_id=TRACEPARENT.split("-")[1],
        traceparent=TRACEPARENT,
    )
    await common_nats.ensure_pool_consumer(js, pool)
    await js.publish(
        subjects.dispatch_subject(pool),
        job.model_dump_json().encode(),
        stream=subjects.DISPATCH_STREAM,
        headers={"Nats-Msg-Id": f"{job_id}:1"},
    )
    # What a pool hands its runners (trainers/pool.py), the grace among it.
    env = {**os.environ, "VTP_PREEMPT_GRACE": "17"}
    env = pool_environ(env) | {
        "NATS_URL": platform.nats_url,
        "VTP_POOL": pool,
        "VTP_HEARTBEAT_INTERVAL": "0.2",
        "VTP_RUNNER_FETCH_TIMEOUT": "1",
    }
    runner = await asyncio.create_subprocess_exec(sys.executable, "-m", "trainers.runner", env=env)
    deadline = time.monotonic() + 90
    while not of_kind(await stored_reports(js, job_id), ProgressReport):
        assert time.monotonic() < deadline, "no progress report"
        assert runner.returncode is None
        await asyncio.sleep(0.05)
    runner.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert await asyncio.wait_for(runner.wait(), 17) == 0
    exited = time.monotonic() - sent

    found = await stored_reports(js, job_id)
    [done] = of_kind(found, DoneReport)
    completed = len(of_kind(found, ProgressReport))
    assert (done.status, done.reason) == ("preempted", f"preempted by SIGTERM after epoch {completed}")
    # The trainer's own output, which the runner sends as log lines, names the grace it got.
    output = "\n".join(line.text for log in of_kind(found, LogReport) for line in log.lines or ())
    assert "17.0 s to save the checkpoint and report" in output
    from tests.trainers.test_runner_timm import lag

    assert lag(platform, pool) == 0  # acked: the scheduler, not a redelivery, runs the job again
    print(f"runner: SIGTERM -> runner exit {exited:.2f} s")


def test_the_grace_reaches_the_trainer_through_the_pool_and_the_runner():
    assert passed_to_trainer("VTP_PREEMPT_GRACE")
    assert pool_environ({"VTP_PREEMPT_GRACE": "45", "DATABASE_URL": "x"}) == {"VTP_PREEMPT_GRACE": "45"}


STUCK = """
import sys, time
from trainers.heartbeat import Heartbeat
from trainers.preemption import Preemption

heartbeat = Heartbeat(None, 60)  # never started: no callbacks
Preemption(heartbeat, lambda reason: print("REPORTED", reason, flush=True), float(sys.argv[1])).install()
print("ready", flush=True)
time.sleep(60)  # a batch, an upload or an export that does not end: the stop flag is never looked at
print("woke up", flush=True)
"""


def test_a_trainer_that_does_not_stop_is_reported_preempted_and_ended_within_the_grace():
    process = subprocess.Popen(
        [sys.executable, "-c", STUCK, "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    assert process.wait(10) == 0
    ended = time.monotonic() - started
    # The watchdog acts half-way through the grace's reserve: 3 s - 0.6 s / 2.
    assert 2.6 < ended < 3.0
    assert process.stdout.read() == (
        "REPORTED preempted by SIGTERM; the trainer had not stopped within the grace of 3 s "
        "(the job resumes from the last checkpoint it uploaded)\n"
    )


class StopAfter(threading.Event):
    """A stop flag that is set from its `calls`-th look on: where in an epoch the loop stops."""

    def __init__(self, calls: int) -> None:
        super().__init__()
        self.left = calls

    def is_set(self) -> bool:
        self.left -= 1
        return self.left < 0


@pytest.mark.parametrize(("looks", "done"), [(2, 0), (3, 1)])
def test_a_timm_epoch_stopped_in_its_validation_is_not_done(tmp_path, looks, done):
    """Two training batches and one validation batch an epoch: looks 0 and 1 are epoch 1's training, 2 its
    validation, 3 epoch 2's first batch."""
    from trainers.datasets import safe_extract
    from trainers.timm import training
    from vtp.synthetic import make_imagefolder_archive

    archive = make_imagefolder_archive(
        tmp_path / "a.zip", classes=2, train_per_class=8, val_per_class=2, size=32
    )
    dataset = safe_extract(archive, tmp_path / "dataset")
    hyperparameters = Hyperparameters(epochs=2, batch_size=8, image_size=32, learning_rate=0.003)
    spec = TimmSpec(framework="timm", task="classify", model="resnet18", hyperparameters=hyperparameters)
    reported: list[int] = []
    outcome = training.train(spec, dataset, StopAfter(looks), lambda epoch, *_: reported.append(epoch))
    assert (outcome.stopped, outcome.epochs_done, reported) == (True, done, list(range(1, done + 1)))


def test_a_yolo_epoch_is_left_in_its_validation_but_not_after_the_last_epoch():
    from types import SimpleNamespace

    from trainers.ultralytics.training import EpochReporter, Outcome, Preempted

    stop, preempt = threading.Event(), threading.Event()
    outcome = Outcome(save_dir=Path("run"))
    reporter = EpochReporter(stop, lambda *report: None, outcome, preempt)
    trainer = SimpleNamespace(epoch=1, epochs=2, tloss=None, metrics={}, stop=False)
    reporter.on_train_epoch_end(trainer)
    reporter.on_val_batch_end(SimpleNamespace())  # not preempted: validation goes on
    stop.set()
    preempt.set()
    with pytest.raises(Preempted):
        reporter.on_val_batch_end(SimpleNamespace())
    assert outcome.stopped

    outcome = Outcome(save_dir=Path("run"))
    reporter = EpochReporter(stop, lambda *report: None, outcome, preempt)
    reporter.on_train_epoch_end(trainer)  # the last epoch (2 of 2) trained
    reporter.on_fit_epoch_end(trainer)  # ... and validated: nothing left to preempt
    reporter.on_val_batch_end(SimpleNamespace())  # best.pt's final validation
    assert (outcome.stopped, outcome.epochs_done, trainer.stop) == (False, 2, False)


class Uploads:
    """What a Progress sends, recorded; an upload blocks until released when asked to."""

    def __init__(self, hang: bool = False) -> None:
        self.sent: list[tuple] = []
        self.release = threading.Event()
        if not hang:
            self.release.set()

    def progress(self, epoch, epochs, metrics, resumed_from_epoch=None, epoch_seconds=None):
        self.sent.append(("progress", epoch))

    def log(self, message, level="info"):
        self.sent.append(("log", message))

    def upload_artifact(self, path, name):
        self.release.wait(30)
        self.sent.append(("artifact", path.read_bytes().decode()))


def epochs_done(progress: Progress, tmp_path: Path, epochs: range) -> None:
    def write(epoch: int) -> Path:
        (tmp_path / "last.pt").write_text(f"epoch {epoch}")
        return tmp_path / "last.pt"

    for epoch in epochs:
        progress.checkpoint(epoch, lambda epoch=epoch: write(epoch))
        progress(epoch, 4, {})


def test_on_preemption_the_skipped_checkpoint_of_the_latest_epoch_is_written_and_sent(tmp_path):
    client = Uploads()
    progress = Progress(client, checkpoint_budget=0.0)  # type: ignore[arg-type]
    epochs_done(progress, tmp_path, range(1, 4))
    assert progress.save_latest(time.monotonic() + 5) == 3
    assert [entry for entry in client.sent if entry[0] == "artifact"] == [
        ("artifact", "epoch 1"),
        ("artifact", "epoch 3"),
    ]
    assert progress.save_latest(time.monotonic() + 5) == 3  # nothing more to send


def test_a_checkpoint_that_cannot_be_sent_by_the_deadline_is_given_up(tmp_path):
    client = Uploads(hang=True)
    progress = Progress(client, checkpoint_budget=0.0)  # type: ignore[arg-type]
    progress.resumed(1, 4)  # the job's last.pt holds epoch 1 already
    epochs_done(progress, tmp_path, range(2, 3))  # epoch 2's upload hangs
    started = time.monotonic()
    assert progress.save_latest(started + 0.3) == 1
    assert 0.3 <= time.monotonic() - started < 1.0
    assert preempted_reason(progress.completed, 1) == (
        "preempted by SIGTERM after epoch 2; its checkpoint could not be saved within the grace, "
        "the job resumes after epoch 1"
    )
    client.release.set()


@pytest.mark.parametrize(
    ("completed", "saved", "reason"),
    [
        (0, None, "preempted by SIGTERM before the first epoch ended"),
        (3, 3, "preempted by SIGTERM after epoch 3"),
        (
            2,
            None,
            "preempted by SIGTERM after epoch 2; its checkpoint could not be saved within the grace, "
            "the job starts over",
        ),
    ],
)
def test_the_reason_says_where_the_job_resumes(completed, saved, reason):
    assert preempted_reason(completed, saved) == reason
