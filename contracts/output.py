"""A trainer's output as its runner captures it (trainers/output.py): lines, each with the stream it came
from, carried by a log callback (`LogCallback.lines`), its report (`LogReport.lines`) and the job's
`job.log` event (`payload.lines`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.base import Message, StorableStr

# The most one log callback may carry (a runner sends less: trainers/output_batch.py).
MAX_LINES = 1000
MAX_LINE_CHARS = 10_000


class OutputLine(Message):
    """One line: from the trainer's `stdout` or `stderr`, or the `runner`'s own note about the output
    (lines it dropped, and why)."""

    stream: Literal["stdout", "stderr", "runner"]
    text: StorableStr = Field(max_length=MAX_LINE_CHARS)
