"""What an in-process task prints, captured per task (bounded), for its logs.

Many tasks run at once in one process, so a task's output cannot be told apart
by redirecting sys.stdout. Instead sys.stdout/sys.stderr are wrapped once by a
router that also copies each write into the buffer of the task whose context
is current (a ContextVar: asyncio tasks and executor threads inherit it). Output
still reaches the real streams, so the host's own logs keep it.

Writes through to the real stream take `WRITE_LOCK`, so task threads write one at
a time and their lines never interleave mid-line. A router, once made, lives as
long as the process (see `_router`).
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
WRITE_LOCK = threading.Lock()

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
        with WRITE_LOCK:
            return self._real.write(text)

    def flush(self) -> None:
        with WRITE_LOCK:
            self._real.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


_routers: dict[int, _Router] = {}  # id of the stream -> its router, kept for good


def _router(stream: TextIO) -> _Router:
    """The one router of `stream`, never freed: `print` in CPython 3.11 holds sys.stdout
    without a reference of its own, so a router freed because something (pytest's
    capture, a redirect) put another stream in its place while a task thread was printing
    through it crashed the interpreter."""
    if isinstance(stream, _Router):
        return stream
    router = _routers.get(id(stream))
    if router is None:
        router = _routers[id(stream)] = _Router(stream)  # it keeps `stream`, so the id holds
    return router


def install() -> None:
    """Route sys.stdout/sys.stderr (again, if something swapped them since)."""
    sys.stdout = _router(sys.stdout)
    sys.stderr = _router(sys.stderr)


@contextlib.contextmanager
def captured(limit: int = MAX_LOG_BYTES) -> Iterator[TaskOutput]:
    """Within this block (and what it starts), output is also kept in the yielded buffer."""
    install()
    output = TaskOutput(limit)
    token = _current.set(output)
    try:
        yield output
    finally:
        _current.reset(token)
