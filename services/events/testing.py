"""An events service in a background thread of the current process, on a real port: for tests and for tools
that want a callback ingress without a separate process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import uvicorn
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from contracts import subjects
from contracts.reports import REPORT_KINDS, Report
from services.events.app import create_app
from services.events.settings import EventsSettings


@contextlib.contextmanager
def serve_in_thread(settings: EventsSettings, timeout: float = 20.0) -> Iterator[str]:
    """Start the app on `settings.host:settings.port`; yield its base URL; stop it on exit."""
    config = uvicorn.Config(
        create_app(settings), host=settings.host, port=settings.port, access_log=False, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="events-service", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the events service did not start")
        time.sleep(0.02)
    try:
        yield f"http://{settings.host}:{settings.port}"
    finally:
        server.should_exit = True
        thread.join(timeout)


async def stored_reports(js: JetStreamContext, job_id: str) -> list[tuple[str, Report]]:
    """Every report of a job still in VTP_REPORTS, in order, as (subject, report) — read with direct
    message gets, not a consumer, so it never competes with the scheduler's work-queue consumer."""
    found: list[tuple[str, Report]] = []
    seq = 1
    while True:
        try:
            msg = await js.get_msg(
                subjects.REPORTS_STREAM, seq=seq, subject=f"{subjects.PREFIX}.report.{job_id}.>", next=True
            )
        except NotFoundError:
            return found
        kind = msg.subject.rsplit(".", 1)[-1]
        found.append((msg.subject, REPORT_KINDS[kind].model_validate_json(msg.data or b"")))
        seq = msg.seq + 1
