"""A background heartbeat for trainers: calls `heartbeat()` every interval; its answer sets the stop flag
that the training loop checks between batches. A preemption (SIGTERM: trainers/preemption.py) sets the same
flag, with the deadline by which the attempt must have reported."""

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
        # Training stops at the next batch: the job's own stop (a cancel) or a preemption.
        self.stop_requested = threading.Event()
        self.stop_reason: str | None = None  # the answer's
        self.cancel_requested = threading.Event()  # the answer said stop: the job is not to go on at all
        self.preempt_requested = threading.Event()
        self.preempt_deadline: float | None = None  # time.monotonic(): when saving must be over
        self._closed = threading.Event()
        # In the context it was made in (the trainer's span): its callbacks carry that trace context.
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._run,), name="heartbeat", daemon=True
        )

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    @property
    def close_timeout(self) -> float:
        """How long `close` waits by default: a heartbeat under way may take its callback's retries."""
        return self._interval + 35

    def close(self, timeout: float | None = None) -> None:
        """Stop beating, once a heartbeat under way has ended (waiting `timeout` s at most)."""
        self._closed.set()
        self._thread.join(timeout=self.close_timeout if timeout is None else timeout)

    @property
    def preempted(self) -> bool:
        """The stop is a preemption: SIGTERM, and no cancel (which wins: the job is not to go on at all)."""
        return self.preempt_requested.is_set() and not self.cancel_requested.is_set()

    def preempt(self, deadline: float) -> None:
        """Stop training for a preemption: the checkpoint saved by `deadline` (time.monotonic()). From a
        signal handler: Events, which the main thread only reads (`is_set` takes no lock it could hold)."""
        self.preempt_deadline = deadline
        self.preempt_requested.set()
        self.stop_requested.set()

    def beat(self) -> None:
        try:
            answer = self._client.heartbeat()
        except CallbackError as exc:
            # Not fatal: the scheduler's heartbeat deadline decides what a silent trainer means.
            log.warning("heartbeat failed: %s", exc)
            return
        if answer.stop and not self.cancel_requested.is_set():
            self.stop_reason = answer.reason or "stop requested"
            log.info("stop requested: %s", self.stop_reason)
            self.cancel_requested.set()
            self.stop_requested.set()

    def _run(self) -> None:
        while not self._closed.wait(self._interval):
            self.beat()
