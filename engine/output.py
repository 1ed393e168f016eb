"""What an in-process task prints, captured per task (bounded), for its logs.

Many tasks run at once in one process, so a task's output cannot be told apart
by redirecting sys.stdout. Instead sys.stdout/sys.stderr are wrapped once by a
router that also copies each write into the buffer of the task whose context
is current (a ContextVar: asyncio tasks and executor threads inherit it). Output
still reaches the real streams, so the host's own logs keep it.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections import deque
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, TextIO

MAX_LOG_BYTES = 64 * 1024

_current: ContextVar[TaskOutput | None] = ContextVar("stageflow_task_output", default=None)


class TaskOutput:
    """The last `limit` bytes (about) a task wrote; says how much was dropped before."""

    def __init__(self, limit: int = MAX_LOG_BYTES) -> None:
        self._limit = limit
        self._chunks: deque[str] = deque()
        self._size = 0
        self._dropped = 0
        self._lock = threading.Lock()  # sync tasks write from threads while the loop reads
        self.written = 0  # characters written so far: tells a reader whether anything is new

    def write(self, text: str) -> None:
        with self._lock:
            self._write(text)

    def _write(self, text: str) -> None:
        self.written += len(text)
        self._chunks.append(text)
        self._size += len(text)
        while self._size > self._limit and len(self._chunks) > 1:
            dropped = self._chunks.popleft()
            self._size -= len(dropped)
            self._dropped += len(dropped)
        if self._size > self._limit:  # one chunk larger than the limit: keep its tail
            only = self._chunks.pop()
            self._dropped += len(only) - self._limit
            self._chunks.append(only[-self._limit :])
            self._size = self._limit

    def text(self) -> str:
        with self._lock:
            head = f"[{self._dropped} earlier characters dropped]\n" if self._dropped else ""
            return head + "".join(self._chunks)


class _Router:
    """Stands in for sys.stdout/sys.stderr: writes through, and into the current task's log."""

    def __init__(self, real: TextIO) -> None:
        self._real = real

    def write(self, text: str) -> int:
        output = _current.get()
        if output is not None:
            output.write(text)
        return self._real.write(text)

    def flush(self) -> None:
        self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _install() -> None:
    if not isinstance(sys.stdout, _Router):
        sys.stdout = _Router(sys.stdout)
    if not isinstance(sys.stderr, _Router):
        sys.stderr = _Router(sys.stderr)


@contextlib.contextmanager
def captured(limit: int = MAX_LOG_BYTES) -> Iterator[TaskOutput]:
    """Within this block (and what it starts), output is also kept in the yielded buffer."""
    _install()
    output = TaskOutput(limit)
    token = _current.set(output)
    try:
        yield output
    finally:
        _current.reset(token)
