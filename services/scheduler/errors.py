"""Why the shell could not handle an input: the handler naks (transient) or terms (permanent)."""

from __future__ import annotations


class SchedulerError(Exception):
    """Base of the scheduler's own failures."""


class RetryLater(SchedulerError):
    """Nothing was applied; the same input should be delivered again after `delay` seconds."""

    def __init__(self, reason: str, delay: float = 1.0) -> None:
        super().__init__(reason)
        self.delay = delay


class UnreadableMessage(SchedulerError):
    """A message that cannot be parsed into an input: redelivering it would not help."""
