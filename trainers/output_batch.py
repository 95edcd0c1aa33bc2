"""Which of a trainer's output lines go to its job, and when: batches, the rate limit and the caps of one
attempt. Pure: no I/O, time comes in with each call.

- Batched: one log callback carries up to `batch_lines` lines (`batch_bytes` of text), and goes at most every
  `flush_every` seconds; a line after a quiet spell goes within `linger` (with whatever follows it that fast).
- Rate-limited: that is `batch_lines` lines a second at most. A burst waits its turn, up to `buffer_lines`
  lines (`buffer_bytes`) waiting; what comes while that many wait is dropped.
- Capped: an attempt sends at most `max_lines` lines and `max_bytes` of text; the rest is dropped.
- Every drop is counted and said, in a line of the `runner` stream where it happened (the runner's notes
  count against no limit): lines dropped by the rate limit, the cap reached and what it dropped after,
  lines the events service did not take.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from contracts.output import OutputLine

MIB = 1024 * 1024


@dataclass(frozen=True)
class OutputLimits:
    flush_every: float = 1.0
    linger: float = 0.05
    batch_lines: int = 500
    batch_bytes: int = 32 * 1024
    buffer_lines: int = 2000
    buffer_bytes: int = 128 * 1024
    max_lines: int = 20_000
    max_bytes: int = 4 * MIB

    def describe(self) -> str:
        return f"{self.max_lines} lines or {_size(self.max_bytes)} an attempt"


def _size(count: int) -> str:
    if count >= MIB:
        return f"{count / MIB:g} MiB"
    return f"{count / 1024:g} KiB" if count >= 1024 else f"{count} bytes"


def _plural(count: int, word: str = "line") -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


@dataclass
class _Pending:
    line: OutputLine
    size: int
    note: bool  # a runner's note: counts against no limit


class Batcher:
    """The attempt's output on its way to the job: `add` lines, `due` says when to `take` a batch."""

    def __init__(self, limits: OutputLimits | None = None) -> None:
        self.limits = limits or OutputLimits()
        self._pending: deque[_Pending] = deque()
        self._pending_lines = 0
        self._pending_bytes = 0
        self._first_at: float | None = None  # when the oldest waiting line came
        self._sent_at: float | None = None
        self.accepted_lines = 0
        self.accepted_bytes = 0
        self._rate_dropped = 0
        self._capped = False
        self.cap_dropped = 0
        self._undelivered = 0
        self.dropped = 0  # every line that never reached the job, for whatever reason

    def add(self, stream: str, text: str, now: float) -> None:
        size = len(text.encode())
        limits = self.limits
        if self._capped or (
            self.accepted_lines >= limits.max_lines or self.accepted_bytes + size > limits.max_bytes
        ):
            if not self._capped:
                self._capped = True
                self._note(f"output cap reached ({limits.describe()}): later output is dropped", now)
            self.cap_dropped += 1
            self.dropped += 1
            return
        if self._pending_lines >= limits.buffer_lines or self._pending_bytes + size > limits.buffer_bytes:
            self._rate_dropped += 1
            self.dropped += 1
            return
        self._say_drops(now)
        self.accepted_lines += 1
        self.accepted_bytes += size
        self._push(_Pending(OutputLine(stream=stream, text=text), size, note=False), now)

    def _say_drops(self, now: float) -> None:
        if self._undelivered:
            count, self._undelivered = self._undelivered, 0
            self._note(f"{_plural(count)} of output could not be delivered", now)
        if self._rate_dropped:
            count, self._rate_dropped = self._rate_dropped, 0
            rate = self.limits.batch_lines / self.limits.flush_every
            self._note(f"{_plural(count)} of output dropped (more than {rate:g} lines a second)", now)

    def _note(self, text: str, now: float) -> None:
        self._push(_Pending(OutputLine(stream="runner", text=text), len(text), note=True), now)

    def _push(self, item: _Pending, now: float) -> None:
        self._pending.append(item)
        if not item.note:
            self._pending_lines += 1
            self._pending_bytes += item.size
        if self._first_at is None:
            self._first_at = now

    def due(self, now: float) -> float | None:
        """Seconds until the next batch may go (0: now), or None when nothing waits."""
        if self._first_at is None:
            return None
        at = self._first_at + self.limits.linger
        if self._sent_at is not None:
            at = max(at, self._sent_at + self.limits.flush_every)
        return max(0.0, at - now)

    def take(self, now: float) -> list[OutputLine]:
        """The next batch (it is sent now: the next one waits `flush_every`)."""
        batch: list[OutputLine] = []
        size = 0
        limits = self.limits
        while self._pending and len(batch) < limits.batch_lines:
            item = self._pending[0]
            if batch and size + item.size > limits.batch_bytes:
                break
            self._pending.popleft()
            batch.append(item.line)
            size += item.size
            if not item.note:
                self._pending_lines -= 1
                self._pending_bytes -= item.size
        self._sent_at = now
        self._first_at = now if self._pending else None
        return batch

    def lost(self, batch: list[OutputLine]) -> None:
        """A batch the events service did not take: said with the next batch."""
        count = sum(1 for line in batch if line.stream != "runner")
        self._undelivered += count
        self.dropped += count

    def close(self, now: float) -> None:
        """The end of the output: the drops not said yet are said."""
        self._say_drops(now)
        if self.cap_dropped:
            self._note(f"{_plural(self.cap_dropped)} of output dropped after the cap", now)
            self.cap_dropped = 0

    @property
    def waiting(self) -> bool:
        return bool(self._pending)
