"""Follow a job's server-sent events: a live progress bar on a terminal, one line per event otherwise."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from vtp.client import ApiClient, SseEvent


@dataclass
class JobView:
    """What the display knows about a job, folded from its events."""

    job_id: str
    state: str = "PENDING"
    attempt: int = 1
    epoch: int = 0
    epochs: int | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    # Why it waits and where (`job.pending`), while it is QUEUED.
    pending_reason: str | None = None
    queue_position: int | None = None

    def apply(self, event: SseEvent) -> None:
        data = event.data
        self.state = str(data.get("state", self.state))
        self.attempt = int(data.get("attempt", self.attempt))
        payload = data.get("payload") or {}
        if event.event == "job.pending":
            self.pending_reason, self.queue_position = data.get("pending_reason"), data.get("queue_position")
        elif self.state != "QUEUED" or event.event in ("job.queued", "job.retrying"):
            self.pending_reason = self.queue_position = None  # until the next job.pending says
        if event.event == "job.progress":
            self.epoch = int(payload.get("epoch", self.epoch))
            self.epochs = payload.get("epochs", self.epochs)
            self.metrics = dict(payload.get("metrics") or {})
        elif event.event == "job.submitted":
            spec = payload.get("spec") or {}
            self.epochs = (spec.get("hyperparameters") or {}).get("epochs", self.epochs)
        elif event.event == "job.retrying":
            self.epoch, self.reason = 0, payload.get("reason")
        elif event.event in ("job.failed", "job.cancelled"):
            self.reason = payload.get("reason")
        elif event.event == "job.succeeded":
            final = payload.get("metrics") or {}
            self.metrics = {
                **self.metrics,
                **{k: v for k, v in final.items() if k not in ("epoch", "epochs")},
            }

    def summary(self) -> str:
        parts = [self.state, f"attempt {self.attempt}"]
        if self.epochs:
            parts.append(f"epoch {self.epoch}/{self.epochs}")
        parts += [f"{name} {_number(value)}" for name, value in sorted(self.metrics.items())]
        if self.queue_position is not None:
            parts.append(f"queue position {self.queue_position}")
        if self.pending_reason:
            parts.append(self.pending_reason)
        if self.reason:
            parts.append(f"reason: {self.reason}")
        return "  ".join(parts)


def describe(event: SseEvent, view: JobView) -> str:
    """One line for an event, for output that is not a terminal."""
    payload = event.data.get("payload") or {}
    if event.event == "job.artifact":
        return f"{event.event:14} {payload.get('name')} ({payload.get('size')} bytes)"
    if event.event == "job.log":
        return f"{event.event:14} [{payload.get('level', 'info')}] {payload.get('message')}"
    return f"{event.event:14} {view.summary()}"


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


# The progress line's metrics, those a job reports: timm classify, YOLO detect/segment, YOLO classify.
SHORT_NAMES = {
    "train_loss": "loss",
    "val_loss": "val_loss",
    "val_accuracy": "acc",
    "train_box_loss": "box_loss",
    "mAP50": "mAP50",
    "mAP50-95": "mAP50-95",
    "mAP50-95_mask": "mask_mAP50-95",
    "top1": "top1",
}


def _metrics_line(view: JobView) -> str:
    return "  ".join(
        f"{short} {_number(view.metrics[name])}"
        for name, short in SHORT_NAMES.items()
        if name in view.metrics
    )


def watch_job(client: ApiClient, job_id: str, console: Console | None = None) -> JobView:
    """Follow the job until its terminal event; return what was seen."""
    console = console or Console()
    view = JobView(job_id)
    if not console.is_terminal:
        for event in client.events(job_id, pending=True):
            view.apply(event)
            console.print(describe(event, view), highlight=False, soft_wrap=True)
        return view

    columns = (
        TextColumn("[bold]{task.fields[state]:<9}"),
        BarColumn(bar_width=24),
        TextColumn("epoch {task.completed:.0f}/{task.fields[epochs]}"),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(job_id, total=None, state=view.state, epochs="?", metrics="")
        for event in client.events(job_id, pending=True):
            view.apply(event)
            if event.event == "job.pending":
                progress.console.print(f"queued: {view.pending_reason}", highlight=False)
            elif event.event == "job.retrying":
                progress.console.print(f"retrying (attempt {view.attempt}): {view.reason}")
            elif event.event == "job.log" and (event.data.get("payload") or {}).get("level") in (
                "warning",
                "error",
            ):
                progress.console.print(f"trainer: {event.data['payload'].get('message')}", highlight=False)
            progress.update(
                task,
                total=view.epochs,
                completed=view.epoch,
                state=view.state,
                epochs=view.epochs or "?",
                metrics=_metrics_line(view),
            )
    if view.reason:
        console.print(f"{view.state}: {view.reason}", highlight=False)
    return view
