"""The timm trainer's resumable checkpoint (the job's `last.pt`): model and optimizer state after an epoch,
and the random states that let the next epoch go exactly as it would have gone without the interruption.
`model.pt` stays the plain state_dict users load; this file is for resuming (and for users who want to go on
training themselves: `torch.load(path)["model_state"]` is that state_dict too)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from contracts.jobs import TimmSpec
from trainers.resume import NotResumable

FORMAT = "vtp-timm-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    model: str
    classes: list[str]
    epoch: int  # epochs done: training goes on with epoch + 1
    epochs: int
    metrics: dict[str, float]
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    rng_state: torch.Tensor  # torch's CPU generator: augmentation
    shuffle_state: torch.Tensor  # the train loader's generator: batch order

    def save(self, path: Path) -> Path:
        """Write at once: the states are the live model's and optimizer's tensors, not copies."""
        torch.save({"format": FORMAT, **{f.name: getattr(self, f.name) for f in fields(self)}}, path)
        return path

    @classmethod
    def load(cls, path: Path) -> Checkpoint:
        """Raises `NotResumable` for a file that is no checkpoint of this trainer."""
        try:
            # weights_only: tensors and plain data only, never code from a file that came over the network.
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise NotResumable(f"is unreadable ({type(exc).__name__}: {exc})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise NotResumable("is not a timm checkpoint of this platform")
        try:
            return cls(**{f.name: data[f.name] for f in fields(cls)})
        except KeyError as exc:
            raise NotResumable(f"is incomplete (no {exc})") from None

    def mismatch(self, spec: TimmSpec) -> str | None:
        """Why this checkpoint cannot go on with `spec`'s training, or `None` when it can."""
        if self.model != spec.model:
            return f"holds a {self.model}, the job trains a {spec.model}"
        if self.epochs != spec.hyperparameters.epochs:
            return f"is of a {self.epochs}-epoch run, the job has {spec.hyperparameters.epochs}"
        return None


def read(path: Path, spec: TimmSpec) -> Checkpoint:
    """The checkpoint `spec`'s training goes on from (the file is gone after it: all of it is in memory)."""
    try:
        checkpoint = Checkpoint.load(path)
    finally:
        path.unlink()
    if problem := checkpoint.mismatch(spec):
        raise NotResumable(problem)
    return checkpoint
