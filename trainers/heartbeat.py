"""A background heartbeat for trainers: calls `heartbeat()` every interval; its answer sets the stop flag
that the training loop checks between batches."""

from __future__ import annotations

import contextvars
import logging
import threading

from trainers.callbacks import CallbackClient, CallbackError

log = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, client: CallbackClient, interval: float) -> None:
        self._client = client
        self._interval = max(0.05, interval)
        self.stop_requested = threading.Event()
        self.stop_reason: str | None = None
        self._closed = threading.Event()
        # In the context it was made in (the trainer's span): its callbacks carry that trace context.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._run,), name="heartbeat", daemon=True
        )

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=self._interval + 35)

    def beat(self) -> None:
        try:
            answer = self._client.heartbeat()
        except CallbackError as exc:
            # Not fatal: the scheduler's heartbeat deadline decides what a silent trainer means.
            log.warning("heartbeat failed: %s", exc)
            return
        if answer.stop and not self.stop_requested.is_set():
            self.stop_reason = answer.reason or "stop requested"
            log.info("stop requested: %s", self.stop_reason)
            self.stop_requested.set()

    def _run(self) -> None:
        while not self._closed.wait(self._interval):
            self.beat()
