"""Coalescing status writes: a burst of transitions becomes one write.

A stage of a thousand tasks makes three thousand transitions in a moment; a sink
that talks to Redis or the Kubernetes API should see a handful of writes, each
carrying every task that changed since the last one. The final status is never
delayed: `publish(..., final=True)` returns only once it has been written.
"""

from __future__ import annotations

import asyncio
import logging

from stageflow.engine.interfaces import StatusSink
from stageflow.models.status import RunStatus

logger = logging.getLogger(__name__)


class CoalescingSink:
    """Wraps a sink; writes at most once per `interval` seconds, and at the end."""

    def __init__(self, inner: StatusSink, *, interval: float) -> None:
        self._inner = inner
        self._interval = interval
        self._pending: set[str] = set()
        self._status: RunStatus | None = None
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        self.writes = 0

    async def publish(self, status: RunStatus, changed: frozenset[str], *, final: bool) -> None:
        self._status = status
        self._pending |= changed
        if final:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            await self._flush(final=True)
        elif self._timer is None:
            self._timer = asyncio.create_task(self._flush_later())

    async def written(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self._flush(final=False)
        await self._inner.written()

    async def record_log(self, task_id: str, text: str) -> None:
        await self._inner.record_log(task_id, text)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._interval)
        self._timer = None
        try:
            await self._flush(final=False)
        except Exception:
            logger.exception("status write failed; retrying in %ss", self._interval)
            if self._timer is None:
                self._timer = asyncio.create_task(self._flush_later())

    async def _flush(self, *, final: bool) -> None:
        async with self._lock:
            if self._status is None:
                return
            changed, self._pending = frozenset(self._pending), set()
            try:
                await self._inner.publish(self._status, changed, final=final)
            except BaseException:
                self._pending |= changed
                raise
            self.writes += 1
