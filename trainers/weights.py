"""Starting weights (`VTP_WEIGHTS_URL`): fetched for a job whose spec names `weights`, unless the attempt
resumes from a checkpoint (which already holds everything the weights started)."""

from __future__ import annotations

from pathlib import Path

import httpx

from trainers.datasets import download
from trainers.env import TrainerEnv
from trainers.resume import Progress


class WeightsUnavailable(Exception):
    """The spec names weights that cannot be fetched (gone from storage, or storage refused)."""


def fetch_weights(env: TrainerEnv, progress: Progress, dest: Path) -> Path | None:
    """The starting weights, downloaded to `dest` (and said so in the job's events); `None` when the spec
    names none."""
    if env.weights_url is None:
        return None
    progress.from_weights(getattr(env.spec, "weights", None) or "from the job's spec")
    try:
        return download(env.weights_url, dest, what="weights")
    except httpx.HTTPStatusError as exc:
        # Not the error itself: its message carries the signed URL, and the reason ends up in job events.
        raise WeightsUnavailable(f"weights download refused with status {exc.response.status_code}") from None
