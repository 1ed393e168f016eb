"""Servers a test starts die with the test run, even when pytest itself is killed.

A crashed or killed pytest used to leave its operator, API and Redis processes running;
an operator watching every namespace of a shared control plane then ran the next
session's runs a second time. `die_with_parent` asks the kernel (prctl
PR_SET_PDEATHSIG) to SIGKILL the child when the process that started it is gone.
"""

from __future__ import annotations

import ctypes
import signal
import sys

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A `preexec_fn` for subprocess.Popen (runs in the child, before exec)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
