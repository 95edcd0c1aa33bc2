"""Child processes that die with their parent, even when the parent is killed with SIGKILL.

A SIGKILLed parent runs no clean-up, so its children would live on, orphaned (a runner holding a dispatch
message, a trainer still training). On Linux the child asks the kernel to SIGKILL it when its parent dies
(`prctl(PR_SET_PDEATHSIG)`); every process that starts others does this for its own children, so a whole
tree (`vtp up` -> pool -> runner -> trainer) goes at once. Elsewhere nothing is set.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def dies_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` (subprocess.Popen, asyncio.create_subprocess_exec): the child is SIGKILLed when the
    process calling this dies. The kernel watches the *thread* that started the child, not the process, so
    from any other thread than the main one (a worker of `asyncio.to_thread` may end any time) this sets
    nothing: None."""
    if _libc is None or threading.current_thread() is not threading.main_thread():
        return None
    prctl, parent = _libc.prctl, os.getpid()

    def set_parent_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between fork and prctl: nobody will signal us
            os.kill(os.getpid(), signal.SIGKILL)

    return set_parent_death_signal
