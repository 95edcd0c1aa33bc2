"""Preemption: SIGTERM to a trainer (a Kubernetes eviction, a spot reclaim, a drained node; its runner passes
the signal on) stops training at the next batch, brings the job's resume checkpoint up to the latest epoch
completed, reports `done(preempted)` and exits 0, all within `VTP_PREEMPT_GRACE` seconds of the signal
(default 30: the time the platform leaves before SIGKILL; the chart sets the runner pods'
`terminationGracePeriodSeconds` above it). The job runs again, its attempt unchanged, from that checkpoint.

The grace is split in two. Saving may take all but `report_reserve(grace)` of it (`save_deadline`): a
checkpoint that would end later is given up, and the reason says from which epoch the job resumes. The rest
is for the report and the exit. Whatever the trainer is doing then (a batch that will not end, an upload
that hangs, an export), a watchdog sees to the end half-way through that reserve: it reports `preempted`
itself unless the attempt has had its last word, and ends the process. A preempted trainer never exits
through the interpreter's shutdown, which would wait for an upload still under way: what it left running
must not outlive its report.

SIGINT keeps Python's meaning (KeyboardInterrupt: the attempt fails); only SIGTERM preempts.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType

from trainers.heartbeat import Heartbeat

log = logging.getLogger(__name__)

GRACE_VARIABLE = "VTP_PREEMPT_GRACE"
DEFAULT_GRACE = 30.0


def grace_from_environ(environ: Mapping[str, str] | None = None) -> float:
    value = (os.environ if environ is None else environ).get(GRACE_VARIABLE, "")
    try:
        grace = float(value) if value else DEFAULT_GRACE
    except ValueError:
        grace = math.nan
    if not math.isfinite(grace) or grace <= 0:
        log.warning("%s=%r is not a number of seconds; using %s", GRACE_VARIABLE, value, DEFAULT_GRACE)
        return DEFAULT_GRACE
    return grace


def report_reserve(grace: float) -> float:
    """The end of the grace kept for the report and the exit: a fifth of it, at most 5 s (a `done`
    callback takes milliseconds; the rest covers a retry or two)."""
    return min(5.0, grace / 5)


class Preemption:
    """The SIGTERM handler of a trainer process, its deadlines, and the watchdog that keeps them.
    `report(reason)` sends `done(preempted)` for the watchdog."""

    def __init__(
        self,
        heartbeat: Heartbeat,
        report: Callable[[str], None],
        grace: float = DEFAULT_GRACE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.grace = grace
        self.signalled_at: float | None = None
        self._heartbeat = heartbeat
        self._report = report
        self._clock = clock
        self._signalled = threading.Event()
        self._last_word = threading.Lock()
        self._spoken = False
        self._status = 0  # the exit status that goes with the last word
        # Started now, not in the handler: a handler runs between two bytecodes of the main thread, which may
        # hold the very lock that starting a thread takes.
        self._watchdog = threading.Thread(target=self._watch, name="preemption", daemon=True)

    def install(self) -> Preemption:
        """From the main thread (Python runs signal handlers there only)."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        self._watchdog.start()
        return self

    @property
    def signalled(self) -> bool:
        return self.signalled_at is not None

    @property
    def save_deadline(self) -> float:
        """When saving must be over (a `clock` time); infinity before SIGTERM."""
        if self.signalled_at is None:
            return math.inf
        return self.signalled_at + self.grace - report_reserve(self.grace)

    @property
    def watchdog_at(self) -> float:
        if self.signalled_at is None:
            return math.inf
        return self.signalled_at + self.grace - report_reserve(self.grace) / 2

    def bounded(self, seconds: float) -> float:
        """`seconds`, or what is left before the watchdog acts when that is less."""
        return max(0.0, min(seconds, self.watchdog_at - self._clock()))

    def last_word(self, report: Callable[[], None], status: int) -> None:
        """Send the attempt's outcome (`report`) unless the watchdog has sent its own; `status` is the exit
        status that goes with it. Raises what `report` raises (nothing is then taken as said)."""
        with self._last_word:
            if self._spoken:
                log.info("the watchdog has reported the preemption already")
                return
            report()
            self._spoken, self._status = True, status

    def exit(self, status: int) -> None:
        """End the process now, with `status` (after the last word)."""
        log.info("preempted: exiting %.1f s after SIGTERM", self._clock() - (self.signalled_at or 0.0))
        _end(status)

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        if self.signalled_at is not None:
            return  # the runner's forward and the pod's own signal, say
        self.signalled_at = self._clock()
        self._heartbeat.preempt(self.save_deadline)
        self._signalled.set()

    def _watch(self) -> None:
        self._signalled.wait()
        assert self.signalled_at is not None
        grace_ends = self.signalled_at + self.grace
        log.warning(
            "SIGTERM: preempted; stopping at the next batch, %.1f s to save the checkpoint and report",
            self.grace,
        )
        time.sleep(max(0.0, self.watchdog_at - self._clock()))
        status = 1
        # Whoever speaks now is near the end of its report; the grace's end is the limit.
        if self._last_word.acquire(timeout=max(0.0, grace_ends - self._clock())):
            if self._spoken:
                status = self._status
            else:
                log.error("preempted: the attempt had not reported %.1f s after SIGTERM", self.grace)
                try:
                    self._report(
                        f"preempted by SIGTERM; the trainer had not stopped within the grace of "
                        f"{self.grace:g} s (the job resumes from the last checkpoint it uploaded)"
                    )
                    status = 0
                except Exception as exc:  # whatever it is, the process ends now
                    log.error("could not report the preemption: %s", exc)
        _end(status)


def _end(status: int) -> None:
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(status)
