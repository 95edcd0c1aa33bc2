"""Resuming an attempt where an earlier one stopped, the same for every framework: fetch the job's last
checkpoint (`VTP_RESUME_URL`), upload a new one after every epoch, and say in the job's events where training
started (resumed, not resumed and why, or from which starting weights). What a checkpoint holds and how
training goes on from it is each framework's own business: its `read` turns the downloaded file into a resume
point, or raises `NotResumable`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

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
    and after a resume a `job.log` line saying so and `resumed_from_epoch` on the first progress after it."""

    def __init__(self, client: CallbackClient) -> None:
        self._client = client
        self._resumed_from: int | None = None

    def resumed(self, epoch: int, epochs: int) -> None:
        self._resumed_from = epoch
        source = f"{RESUME_CHECKPOINT} of an earlier attempt"
        self._tell("info", f"resumed from epoch {epoch} of {epochs} ({source})")

    def not_resumed(self, why: str) -> None:
        self._tell("warning", f"not resuming: {why}; starting at epoch 1")

    def from_weights(self, reference: str) -> None:
        self._tell("info", f"starting from weights {reference}")

    def __call__(self, epoch: int, epochs: int, metrics: dict[str, float]) -> None:
        log.info("epoch %d/%d %s", epoch, epochs, metrics)
        self._client.progress(epoch, epochs, metrics, resumed_from_epoch=self._resumed_from)
        self._resumed_from = None

    def checkpoint(self, path: Path) -> None:
        """Upload the checkpoint of the epoch just finished, replacing the job's previous one. One that does
        not get through (retries spent) costs a retry some epochs, not this attempt its training."""
        try:
            self._client.upload_artifact(path, RESUME_CHECKPOINT)
        except CallbackError as exc:
            log.warning("checkpoint not uploaded, training goes on: %s", exc)

    def _tell(self, level: str, message: str) -> None:
        log.log(logging.getLevelName(level.upper()), "%s", message)
        self._client.log(message, level)


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
