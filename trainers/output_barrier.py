"""The trainer's side of its runner's output capture (trainers/output.py): before its `done`, a trainer asks
its runner to deliver the output it wrote so far, and waits (a little) until it has.

Without it, the lines a trainer writes just before `done` (the traceback of its failure, its last epoch)
would still be in the runner's batch when `done` ends the attempt, and the scheduler takes no report of an
attempt that has ended: the job's logs would lose exactly their end.

The runner hands the trainer `VTP_OUTPUT_BARRIER=<mark>:<fd>`: a random mark, and a pipe's read end. The
trainer ends a line with the mark on stdout and on stderr (after everything it wrote before); the runner
takes the mark out, and once it has read it on both, sends what it holds and writes a byte to the pipe.
A trainer started any other way has no such variable, and this does nothing.
"""

from __future__ import annotations

import os
import select
import sys

VARIABLE = "VTP_OUTPUT_BARRIER"
WAIT_SECONDS = 10.0


def deliver_output(timeout: float = WAIT_SECONDS) -> bool:
    """Ask the runner to deliver this process's output so far; whether it said it has, within `timeout`."""
    mark, _, fd_text = os.environ.get(VARIABLE, "").partition(":")
    if not mark or not fd_text.isdigit():
        return False
    fd = int(fd_text)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.write(f"{mark}\n")
            stream.flush()
        except (OSError, ValueError):  # a closed stream: the runner waits for the mark in vain, and so do we
            return False
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable) and os.read(fd, 1) == b"."
    except (OSError, ValueError):
        return False
