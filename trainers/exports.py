"""Exports after training (the spec's `export`), the same for every framework: each format asked for is
written by the framework's exporter and uploaded as an artifact of the job.

A failed export does not fail the job: the model trained, and its checkpoint is uploaded already. The job
succeeds, a `job.log` warning says which export failed and why, and so does `export_failed` in its final
metrics. A cancellation skips the exports not started yet."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from contracts.exports import ExportFormat
from telemetry import tracing
from trainers.callbacks import CallbackClient
from trainers.resume import Progress

log = logging.getLogger(__name__)

# Writes the trained model in one format; the path of the file written (its name is the artifact's).
Exporter = Callable[[ExportFormat], Path]
# Exporters can raise pages of text (a whole graph); the log line and the final metrics keep the start.
REASON_CHARS = 500


def export_all(
    formats: Iterable[ExportFormat] | None,
    exporter: Exporter,
    client: CallbackClient,
    progress: Progress,
    stop: threading.Event,
) -> dict[str, str]:
    """Export and upload each format in turn; `{format: why}` of those that failed."""
    failed: dict[str, str] = {}
    for export_format in formats or ():
        if stop.is_set():
            log.info("cancelled: %s not exported", export_format)
            break
        started = time.monotonic()
        try:
            with tracing.span(f"export {export_format}", attributes={"vtp.export_format": export_format}):
                path = exporter(export_format)
                client.upload_artifact(path, path.name)
        except Exception as exc:  # whatever the exporter raises: the job keeps its trained model
            log.exception("export to %s failed", export_format)
            failed[export_format] = f"{type(exc).__name__}: {exc}"[:REASON_CHARS]
            progress.tell("warning", f"export to {export_format} failed: {failed[export_format]}")
            continue
        seconds = time.monotonic() - started
        progress.tell("info", f"exported {export_format}: {path.name} ({seconds:.1f} s)")
    return failed
