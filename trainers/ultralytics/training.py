"""Training with Ultralytics: the model from its YAML (or a checkpoint to resume), our callbacks on
Ultralytics' hooks, a stop flag checked between batches. Reports go out through `on_epoch` and checkpoints
through `on_checkpoint`; nothing here knows about HTTP.

A stop (a cancel) ends the run Ultralytics' way, `trainer.stop`: it validates and saves the cut epoch, then
validates best.pt. A preemption cannot wait for that, nor have last.pt overwritten by an epoch half done:
`Preempted`, raised from our hook, leaves Ultralytics at once, its last.pt the latest completed epoch's."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from contracts.ultralytics import UltralyticsSpec
from telemetry import tracing
from trainers.failures import SpecRefused
from trainers.ultralytics.metrics import simplify
from trainers.ultralytics.resume import ResumePoint, seed_run_folder

log = logging.getLogger(__name__)

RUN_NAME = "run"
# What a job that names no epochs gets: 10, as for timm jobs, rather than Ultralytics' 100.
DEFAULTS: dict[str, Any] = {"epochs": 10}


class Preempted(Exception):
    """Raised from a hook to leave Ultralytics' training at once (caught by `train`)."""


@dataclass
class Outcome:
    save_dir: Path
    epochs_done: int = 0
    stopped: bool = False
    metrics: dict[str, float] = field(default_factory=dict)


class EpochReporter:
    """Ultralytics' callbacks -> one `on_epoch(epoch, epochs, metrics, seconds)` per completed epoch, and a
    span per epoch, current from its start to its `on_fit_epoch_end` (its checkpoint and report go out
    under it).

    `on_fit_epoch_end` also fires for an epoch cut short by a stop, and once more after the loop for the
    final validation of best.pt (with `trainer.epoch` one past the last). `on_train_epoch_end` tells them
    apart: it marks which epoch just finished training, and whether it finished or was stopped.

    `preempt` (set with `stop`) raises `Preempted` after the batch (of training or of the epoch's
    validation: an epoch cut short in either is not done), or after the epoch's report; not after the last
    epoch's: training is over then, and the run ends as it would have (best.pt validated, uploaded).
    """

    def __init__(
        self,
        stop: threading.Event,
        on_epoch: Callable[[int, int, dict[str, float], float], None],
        outcome: Outcome,
        preempt: threading.Event | None = None,
    ) -> None:
        self._stop = stop
        self._preempt = preempt or threading.Event()
        self._on_epoch = on_epoch
        self._outcome = outcome
        self._finished: tuple[int, bool] | None = None  # (epoch, completed) of the latest training pass
        self._epoch_span: tuple[Span, object] | None = None  # the span and its context token
        self._epoch_started = time.monotonic()

    def register(self, model: Any) -> None:
        model.add_callback("on_train_epoch_start", self.on_train_epoch_start)
        model.add_callback("on_train_batch_end", self.on_train_batch_end)
        model.add_callback("on_train_epoch_end", self.on_train_epoch_end)
        model.add_callback("on_fit_epoch_end", self.on_fit_epoch_end)
        model.add_callback("on_val_batch_end", self.on_val_batch_end)  # the trainer's validator has ours

    def _check_stop(self, trainer: Any, epoch_done: bool = False) -> None:
        if self._preempt.is_set() and not self._outcome.stopped:
            if epoch_done and trainer.epoch + 1 >= trainer.epochs:
                return  # the last epoch is done: nothing left to preempt
            log.info("preempted: leaving training in epoch %d", trainer.epoch + 1)
            self._outcome.stopped = True
            raise Preempted
        if self._stop.is_set() and not self._outcome.stopped:
            log.info("stopping training at epoch %d", trainer.epoch + 1)
            self._outcome.stopped = True
        if self._outcome.stopped:
            trainer.stop = True

    def on_train_epoch_start(self, trainer: Any) -> None:
        self.end_epoch_span()
        self._epoch_started = time.monotonic()
        attributes = {"vtp.epoch": trainer.epoch + 1, "vtp.epochs": trainer.epochs}
        span = tracing.start_span("epoch", attributes=attributes)
        self._epoch_span = (span, otel_context.attach(trace.set_span_in_context(span)))

    def end_epoch_span(self) -> None:
        if self._epoch_span is not None:
            span, token = self._epoch_span
            self._epoch_span = None
            otel_context.detach(token)  # type: ignore[arg-type]
            span.end()

    def on_train_batch_end(self, trainer: Any) -> None:
        self._check_stop(trainer)

    def on_train_epoch_end(self, trainer: Any) -> None:
        self._finished = (trainer.epoch, not self._outcome.stopped)

    def on_val_batch_end(self, validator: Any) -> None:
        # An epoch's validation (`_finished` is set from its training's end to its report), not best.pt's.
        if self._finished is not None and self._preempt.is_set() and not self._outcome.stopped:
            log.info("preempted: leaving the validation of epoch %d", self._finished[0] + 1)
            self._outcome.stopped = True
            raise Preempted

    def on_fit_epoch_end(self, trainer: Any) -> None:
        finished, self._finished = self._finished, None
        if finished is None:  # the final validation of best.pt
            self._outcome.metrics = simplify(trainer.metrics)
            return
        epoch, completed = finished
        if completed:
            losses = (
                trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss is not None else {}
            )
            metrics = simplify({**losses, **trainer.metrics})
            self._outcome.epochs_done = epoch + 1
            self._outcome.metrics = {k: v for k, v in metrics.items() if not k.startswith(("train_", "val_"))}
            self._on_epoch(epoch + 1, trainer.epochs, metrics, time.monotonic() - self._epoch_started)
        self.end_epoch_span()
        self._check_stop(trainer, epoch_done=completed)


class CheckpointReporter:
    """`last.pt` -> `on_checkpoint(path, epoch)` after every completed epoch but the final one (the run's
    end uploads that one anyway, its optimizer stripped by then). A stopped run's last.pt holds no completed
    epoch."""

    def __init__(self, on_checkpoint: Callable[[Path, int], None], outcome: Outcome) -> None:
        self._on_checkpoint = on_checkpoint
        self._outcome = outcome

    def register(self, model: Any) -> None:
        model.add_callback("on_model_save", self.on_model_save)

    def on_model_save(self, trainer: Any) -> None:
        if trainer.epoch + 1 < trainer.epochs and not self._outcome.stopped:
            self._on_checkpoint(trainer.last, trainer.epoch + 1)


def _resume_from(point: ResumePoint, model: Any, save_dir: Path) -> dict[str, Any]:
    """Prepare the run folder and the model's hooks for a resumed run; the train arguments that make it one.
    Ultralytics takes every other argument from the checkpoint, which has the job's own."""
    seed_run_folder(point, save_dir)

    def best_so_far(trainer: Any) -> None:  # after Ultralytics restored the dead attempt's best fitness
        trainer.best_fitness = point.fitness

    model.add_callback("on_pretrain_routine_end", best_so_far)
    # Ultralytics lets a resume change only some arguments; save_dir is one, the old run's project is not.
    return {"resume": str(point.checkpoint), "save_dir": str(save_dir)}


def device() -> str:
    import torch

    return "0" if torch.cuda.is_available() else "cpu"


def train_arguments(spec: UltralyticsSpec, data: Path, project: Path) -> dict[str, Any]:
    """Ultralytics' `train()` arguments for a job: its hyperparameters over our defaults, and the ones the
    trainer owns (folders, device, workers, no plots). The benchmark's direct runs pass the same ones."""
    return {
        **DEFAULTS,
        **spec.hyperparameters,
        "data": str(data),
        "project": str(project.resolve()),
        "name": RUN_NAME,
        "exist_ok": True,
        "workers": 0,
        "device": device(),
        "plots": False,
        "verbose": False,
        "val": True,
    }


def train(
    spec: UltralyticsSpec,
    data: Path,
    project: Path,
    stop: threading.Event,
    on_epoch: Callable[[int, int, dict[str, float]], None],
    *,
    resume: ResumePoint | None = None,
    weights: Path | None = None,
    on_checkpoint: Callable[[Path, int], None] | None = None,
    preempt: threading.Event | None = None,
) -> Outcome:
    """Train `spec.model` on `data` into `project/run`, from scratch or from `weights` (an Ultralytics
    checkpoint: what fits the model's YAML is taken), or on from `resume`. The caller has run
    `offline.prepare` already. Preempted (`preempt` set, with `stop`), the outcome is stopped and the run
    folder's weights/last.pt, if any, holds the latest epoch completed."""
    from ultralytics import YOLO

    arguments = train_arguments(spec, data, project)
    outcome = Outcome(save_dir=project / RUN_NAME)
    try:
        model = YOLO(spec.model, task=spec.task)
    except FileNotFoundError as exc:  # a name of the right shape that Ultralytics has no YAML for
        raise SpecRefused(f"Ultralytics has no model {spec.model} ({exc})") from exc
    epochs = EpochReporter(stop, on_epoch, outcome, preempt)
    epochs.register(model)
    if on_checkpoint is not None:
        CheckpointReporter(on_checkpoint, outcome).register(model)
    if resume is not None:
        outcome.epochs_done = resume.epoch
        arguments |= _resume_from(resume, model, outcome.save_dir.resolve())
    elif weights is not None:
        model.load(str(weights))
    log.info("training %s (%s) with %s", spec.model, spec.task, arguments)
    try:
        model.train(**arguments)
    except Preempted:
        pass  # outcome.stopped, by the hook that raised it
    finally:
        epochs.end_epoch_span()
    return outcome
