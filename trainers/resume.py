"""Resuming an attempt where an earlier one stopped, the same for every framework: fetch the job's last
checkpoint (`VTP_RESUME_URL`), upload a new one after every epoch, and say in the job's events where training
started (resumed, not resumed and why, or from which starting weights). What a checkpoint holds and how
training goes on from it is each framework's own business: its `read` turns the downloaded file into a resume
point, or raises `NotResumable`."""

from __future__ import annotations

import contextvars
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx

from contracts.dispatch import RESUME_CHECKPOINT
from trainers.callbacks import CallbackClient, CallbackError
from trainers.datasets import download
from trainers.env import TrainerEnv

log = logging.getLogger(__name__)


class NotResumable(Exception):
    """A checkpoint that cannot continue this job's training; the message says why."""


class ResumePoint(Protocol):
    @property
    def epoch(self) -> int:
        """Epochs done: training goes on with epoch + 1."""

    @property
    def epochs(self) -> int: ...


PointT = TypeVar("PointT", bound=ResumePoint)


class Progress:
    """A trainer's per-epoch reports: a log line and a progress callback per epoch, the checkpoint upload,
    and after a resume a `job.log` line saying so and `resumed_from_epoch` on the first progress after it.

    A checkpoint uploads while the next epoch trains: uploads and epoch reports go out in turn on a thread of
    their own, each epoch's report after its checkpoint, so a job that reported epoch N resumes after N.
    Training waits only for an upload still running when the next checkpoint comes. `flush()` waits for all
    of it; a report that failed raises there (or at the next checkpoint).

    Preempted, `save_latest` brings the job's checkpoint up to the latest epoch completed within a deadline:
    the upload under way, then the checkpoint the budget skipped, if the latest epoch's was.
    """

    def __init__(self, client: CallbackClient, checkpoint_budget: float | None = None) -> None:
        self._client = client
        self._resumed_from: int | None = None
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="progress")
        self._sent: list[Future[None]] = []
        self._budget = checkpoint_budget_from_environ() if checkpoint_budget is None else checkpoint_budget
        self._last_checkpoint_at: float | None = None
        self._checkpoint_seconds = 0.0  # what the last one cost to write and upload
        self.completed = 0  # the latest epoch the job completed, in this attempt's run or (resumed) before
        self._saved: int | None = None  # the epoch the job's checkpoint holds, as far as this run knows
        self._skipped: tuple[int, Callable[[], Path]] | None = None  # the latest epoch's, when not uploaded

    def resumed(self, epoch: int, epochs: int) -> None:
        self._resumed_from = epoch
        self.completed = self._saved = epoch
        source = f"{RESUME_CHECKPOINT} of an earlier attempt"
        self.tell("info", f"resumed from epoch {epoch} of {epochs} ({source})")

    def not_resumed(self, why: str) -> None:
        self.tell("warning", f"not resuming: {why}; starting at epoch 1")

    def from_weights(self, reference: str) -> None:
        self.tell("info", f"starting from weights {reference}")

    def __call__(
        self, epoch: int, epochs: int, metrics: dict[str, float], seconds: float | None = None
    ) -> None:
        """Epoch `epoch` of `epochs` finished (in `seconds`, its checkpoint's writing included)."""
        log.info("epoch %d/%d %s", epoch, epochs, metrics)
        self.completed = epoch
        resumed = self._resumed_from
        self._send(
            self._client.progress, epoch, epochs, metrics, resumed_from_epoch=resumed, epoch_seconds=seconds
        )
        self._resumed_from = None

    def checkpoint(self, epoch: int, write: Callable[[], Path]) -> None:
        """Upload the checkpoint of `epoch`, just finished (`write()` makes the file), replacing the job's
        previous one, unless that would spend more than the checkpoint budget (see `checkpoint_due`): then
        `write` is kept for a preemption (`save_latest`) until the next epoch's checkpoint. The file is
        handed over: moved aside at once (the trainer may write the next one), deleted once sent. One that
        does not get through (retries spent) costs a retry some epochs, not this attempt its training."""
        self.flush()  # the previous upload is done with its file (and has measured its cost)
        now = time.monotonic()
        if not checkpoint_due(now, self._last_checkpoint_at, self._checkpoint_seconds, self._budget):
            self._skipped = (epoch, write)
            return
        self._skipped = None
        self._last_checkpoint_at = now
        self._send_checkpoint(epoch, write(), now)

    def save_latest(self, deadline: float) -> int | None:
        """Preempted: bring the job's checkpoint up to the latest epoch completed by `deadline`
        (time.monotonic()): wait for the upload under way, then write and upload the checkpoint the budget
        skipped, if it is the latest epoch's. What would end later is given up. The epoch the job's
        checkpoint then holds (None: none), which the reports of every epoch completed have gone out with.

        A skipped checkpoint is written now, from the state training stopped in: for a timm model that is
        the model a few batches into the next epoch, labelled with the epoch completed (the resumed run does
        that next epoch again, from there); Ultralytics' own last.pt is still the completed epoch's."""
        started = time.monotonic()
        if self._wait(deadline) and self._skipped is not None and time.monotonic() < deadline:
            epoch, write = self._skipped
            self._skipped = None
            self._send_checkpoint(epoch, write(), time.monotonic())
            self._wait(deadline)
        log.info(
            "preempted: the job's checkpoint holds epoch %s of the %d completed (%.2f s to save)",
            self._saved,
            self.completed,
            time.monotonic() - started,
        )
        return self._saved

    def flush(self) -> None:
        """Wait until every report and checkpoint handed over so far is sent."""
        sent, self._sent = self._sent, []
        for future in sent:
            future.result()

    def tell(self, level: str, message: str) -> None:
        """A `job.log` line, also in this process's log."""
        self.flush()  # in order with the epochs' reports
        log.log(logging.getLevelName(level.upper()), "%s", message)
        self._client.log(message, level)

    def _wait(self, deadline: float) -> bool:
        """Whether everything handed over so far was sent (or failed: a report lost is logged) by then."""
        sent = self._sent
        for index, future in enumerate(sent):
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                self._sent = sent[index:]
                return False
            except CallbackError as exc:
                log.warning("a report did not get through: %s", exc)
        self._sent = []
        return True

    def _send(self, call: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        # In the caller's context (its epoch's span): the report and the upload belong to that epoch.
        self._sent.append(self._sender.submit(contextvars.copy_context().run, call, *args, **kwargs))

    def _send_checkpoint(self, epoch: int, path: Path, started: float) -> None:
        uploading = path.replace(path.with_name(f".{path.name}.uploading"))
        self._send(self._upload, uploading, started, epoch)

    def _upload(self, path: Path, started: float, epoch: int) -> None:
        try:
            self._client.upload_artifact(path, RESUME_CHECKPOINT)
            self._saved = epoch
        except CallbackError as exc:
            log.warning("checkpoint not uploaded, training goes on: %s", exc)
        finally:
            path.unlink(missing_ok=True)
            self._checkpoint_seconds = time.monotonic() - started


# The share of training time checkpoints may cost. Tiny epochs with a large checkpoint (resnet18 with its
# optimizer state is 134 MB) would otherwise spend more time checkpointing than training; ordinary epochs,
# minutes long, are checkpointed every one (a checkpoint costing a second or two is within 5% of an epoch of
# 40 s). `VTP_CHECKPOINT_BUDGET=1`: every epoch, whatever it costs.
DEFAULT_CHECKPOINT_BUDGET = 0.05


def checkpoint_budget_from_environ() -> float:
    value = os.environ.get("VTP_CHECKPOINT_BUDGET", "")
    try:
        return min(1.0, max(0.0, float(value))) if value else DEFAULT_CHECKPOINT_BUDGET
    except ValueError:
        log.warning("VTP_CHECKPOINT_BUDGET=%r is not a number; using %s", value, DEFAULT_CHECKPOINT_BUDGET)
        return DEFAULT_CHECKPOINT_BUDGET


def checkpoint_due(now: float, last_at: float | None, last_cost: float, budget: float) -> bool:
    """Whether the epoch just finished gets a checkpoint: the first one always; then once the time since the
    last one is long enough that its cost (writing and uploading it) stays within `budget` of that time.
    A retry then repeats at most about `last_cost / budget` seconds of training."""
    if last_at is None or budget >= 1.0:
        return True
    return budget > 0 and now - last_at >= last_cost / budget


def fetch_checkpoint(url: str, dest: Path) -> Path | None:
    """Download the checkpoint to `dest`; `None` when there is none (404). Another refusal raises
    `NotResumable`: S3 answers 403 for a missing key when the signer may not list the bucket."""
    try:
        return download(url, dest, what="checkpoint")
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        if status == 404:
            return None
        raise NotResumable(f"could not be fetched (status {status}: none yet, or storage refused)") from None


def resume_point(
    env: TrainerEnv, progress: Progress, dest: Path, read: Callable[[Path], PointT]
) -> PointT | None:
    """Where this attempt's training starts: `None` for the first epoch (a first attempt, a retry whose
    earlier attempts finished no epoch, a checkpoint `read` refuses), else the point `read` made of the job's
    checkpoint (downloaded to `dest`). A retry says which in the job's events."""
    if env.resume_url is None:
        return None
    try:
        path = fetch_checkpoint(env.resume_url, dest)
        if path is None:
            progress.not_resumed(f"no earlier attempt finished an epoch (no {RESUME_CHECKPOINT})")
            return None
        point = read(path)
    except NotResumable as exc:
        progress.not_resumed(f"{RESUME_CHECKPOINT} {exc}")
        return None
    progress.resumed(point.epoch, point.epochs)
    return point
