"""The runner's capture of its trainer's stdout and stderr: read as the trainer writes them, made readable
(trainers/output_text.py), sent to the job as log callbacks carrying batches of lines within the rate limit
and the attempt's caps (trainers/output_batch.py), and written through to the runner's own stdout and
stderr as the job gets them, redacted (a pod's log, `vtp up`'s log, keep what they had, less its secrets).

The end of the output is not lost: the trainer asks for its output to be delivered before it reports
`done` (trainers/output_barrier.py), and when it exits, what is left is sent before the runner reports
anything. The last lines of stderr are kept for the reason of a trainer that fails without a word.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Any

from contracts.output import OutputLine
from trainers.callbacks import CallbackClient, CallbackError
from trainers.output_barrier import VARIABLE as BARRIER_VARIABLE
from trainers.output_batch import Batcher, OutputLimits
from trainers.output_text import Lines, Redactor, renderer

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
# After the trainer exits, how long its pipes may stay open (a process it started, still holding them).
DRAIN_SECONDS = 5.0
TAIL_LINES = 10
TAIL_CHARS = 2000
STREAMS = {"stdout": 1, "stderr": 2}  # and the runner's own file descriptor each is written through to


def tail_of(lines: Sequence[str], max_lines: int = TAIL_LINES, max_chars: int = TAIL_CHARS) -> list[str]:
    """The last lines that are not blank, at most `max_lines` and `max_chars` in all (the very end kept)."""
    kept: list[str] = []
    room = max_chars
    for line in reversed(lines):
        if not line.strip():
            continue
        if len(kept) == max_lines or room <= 0:
            break
        if len(line) > room:
            line = "…" + line[len(line) - room + 1 :]
        kept.append(line)
        room -= len(line) + 1
    return kept[::-1]


def summary(batch: Sequence[OutputLine]) -> str:
    """A batch in a few words: the `message` of its callback, for readers that know nothing of `lines`."""
    counts = Counter(line.stream for line in batch)
    parts = ", ".join(f"{stream} {count}" for stream, count in counts.items())
    return f"trainer output: {len(batch)} line{'' if len(batch) == 1 else 's'} ({parts})"


class OutputCapture:
    """One attempt's output. `popen_options()` and `environ()` go to the trainer's process; `watch` it."""

    def __init__(
        self,
        client: CallbackClient,
        redact: Redactor,
        limits: OutputLimits | None = None,
        tee: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._batcher = Batcher(limits)
        self._clock = clock
        self._tee = dict(STREAMS) if tee else {}
        mark = f"vtp-output-barrier-{secrets.token_hex(16)}"
        self._lines = {name: Lines(renderer(redact), mark=mark) for name in STREAMS}
        self._mark = mark
        self._barrier_read, self._barrier_write = os.pipe()
        self._marked: set[str] = set()
        self._stderr: deque[str] = deque(maxlen=4 * TAIL_LINES)
        self._wake = asyncio.Event()
        self._sending = asyncio.Lock()
        self._refused = False
        self._batch_prefix = secrets.token_hex(6)
        self._batches = 0

    def popen_options(self) -> dict[str, Any]:
        return {
            "stdout": asyncio.subprocess.PIPE,
            "stderr": asyncio.subprocess.PIPE,
            "pass_fds": (self._barrier_read,),
        }

    def environ(self) -> dict[str, str]:
        return {BARRIER_VARIABLE: f"{self._mark}:{self._barrier_read}"}

    def started(self) -> None:
        """The trainer holds its end of the barrier's pipe now; the runner keeps only its own."""
        os.close(self._barrier_read)
        self._barrier_read = -1

    def close(self) -> None:
        for fd in (self._barrier_read, self._barrier_write):
            if fd >= 0:
                os.close(fd)
        self._barrier_read = self._barrier_write = -1

    @property
    def dropped(self) -> int:
        """Lines that never reached the job (rate limit, cap, refused callbacks)."""
        return self._batcher.dropped

    def stderr_tail(self) -> list[str]:
        return tail_of(self._stderr)

    async def watch(self, child: asyncio.subprocess.Process) -> int:
        """Capture until the trainer exits and its pipes close (or `DRAIN_SECONDS` after it exits), then
        send what is left; the trainer's exit status."""
        assert child.stdout is not None
        assert child.stderr is not None
        readers = {
            name: asyncio.create_task(self._read(name, pipe))
            for name, pipe in (("stdout", child.stdout), ("stderr", child.stderr))
        }
        sender = asyncio.create_task(self._send_when_due())
        try:
            returncode = await child.wait()
            _, held = await asyncio.wait(readers.values(), timeout=DRAIN_SECONDS)
            for name, reader in readers.items():
                if reader in held:
                    log.warning("the trainer's %s is still open after it exited; stopped reading it", name)
                    reader.cancel()
                    self._add(name, self._lines[name].close(self._clock()))
            self._batcher.close(self._clock())
            await self._send_all()
            return returncode
        finally:
            for task in (*readers.values(), sender):
                task.cancel()
            await asyncio.gather(*readers.values(), sender, return_exceptions=True)
            self.close()

    async def _read(self, name: str, pipe: asyncio.StreamReader) -> None:
        lines = self._lines[name]
        while chunk := await pipe.read(READ_SIZE):
            self._add(name, lines.feed(chunk, self._clock()))
            if lines.marked:
                lines.marked = False
                self._marked.add(name)
                if self._marked == set(STREAMS):
                    self._marked.clear()
                    await self._deliver()
        self._add(name, lines.close(self._clock()))

    def _write_through(self, name: str, lines: list[str]) -> None:
        fd = self._tee.get(name)
        if fd is None:
            return
        try:
            view = memoryview("".join(f"{line}\n" for line in lines).encode())
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            self._tee.pop(name, None)  # nobody reads the runner's own output any more: the job still does

    def _add(self, name: str, lines: list[str]) -> None:
        if not lines:
            return
        self._write_through(name, lines)
        now = self._clock()
        if name == "stderr":
            self._stderr.extend(lines)
        for line in lines:
            self._batcher.add(name, line, now)
        self._wake.set()

    async def _deliver(self) -> None:
        """The barrier: everything read so far goes to the job, then the trainer hears so."""
        await self._send_all()
        if self._barrier_write >= 0:
            os.write(self._barrier_write, b".")  # one byte: an empty pipe takes it at once

    async def _send_when_due(self) -> None:
        while True:
            delay = self._batcher.due(self._clock())
            if delay is None or delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                continue
            async with self._sending:
                await self._send(self._batcher.take(self._clock()))

    async def _send_all(self) -> None:
        async with self._sending:
            while self._batcher.waiting:
                await self._send(self._batcher.take(self._clock()))

    async def _send(self, batch: list[OutputLine]) -> None:
        if not batch:
            return
        if self._refused:
            self._batcher.lost(batch)
            return
        self._batches += 1
        batch_id = f"{self._batch_prefix}-{self._batches}"
        try:
            await asyncio.to_thread(self._client.log_output, batch, summary(batch), batch_id)
        except CallbackError as exc:
            if exc.status_code is not None and 400 <= exc.status_code < 500:
                # A token refused or an attempt superseded: no later batch would be taken either.
                log.warning("the trainer's output is refused (%s); no more of it is sent", exc)
                self._refused = True
            else:
                log.warning("a batch of the trainer's output was lost: %s", exc)
            self._batcher.lost(batch)
