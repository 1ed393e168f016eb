"""The Redis mirror: what the operator observes on the watch stream, copied for fast reads.

It mirrors every WorkflowRun event it sees (not only its own writes), so the
mirror also follows changes made by others. A write that fails (Redis down) is
kept, newest version only, and retried until Redis answers. A resync writes
every run the cluster has and drops the ones it no longer has: at start-up, and
whenever Redis answers again after it did not (it may have come back empty).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from stageflow.engine.status import utcnow
from stageflow.kube import is_deleted, record_from_object
from stageflow.operator.metrics import MIRROR_LAG_SECONDS, MIRROR_PENDING, MIRROR_WRITES
from stageflow.store import RedisStore, RunRecord, StoreUnavailableError

logger = logging.getLogger(__name__)

_GONE = None


class RedisMirror:
    def __init__(
        self,
        store: RedisStore,
        *,
        retry_seconds: float,
        list_objects: Callable[[], Awaitable[list[dict[str, Any]]]],
    ) -> None:
        self._store = store
        self._retry_seconds = retry_seconds
        self._list_objects = list_objects
        self._healthy = True
        self._seen: dict[str, dict[str, str]] = {}  # run id -> task id -> its entry as JSON
        self._pending: dict[str, RunRecord | None] = {}  # failed writes; None = a delete
        self._retrying: asyncio.Task[None] | None = None

    @property
    def store(self) -> RedisStore:
        return self._store

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def observe(self, obj: dict[str, Any]) -> None:
        await self._write(record_from_object(obj))

    async def forget(self, run_id: str) -> None:
        self._seen.pop(run_id, None)
        try:
            await self._store.delete(run_id)
            self._pending.pop(run_id, None)
        except StoreUnavailableError:
            self._pending[run_id] = _GONE
            MIRROR_PENDING.set(len(self._pending))

    async def resync(self) -> None:
        """Write every run the cluster has; drop the ones it no longer has."""
        names = set()
        self._seen.clear()  # everything is written whole, and published as changed
        for obj in await self._list_objects():
            if is_deleted(obj):
                continue
            names.add(obj["metadata"]["name"])
            await self.observe(obj)
        try:
            stale = await self._store.run_ids() - names
        except StoreUnavailableError:
            return
        for run_id in stale:
            await self.forget(run_id)

    def start(self) -> None:
        self._retrying = asyncio.create_task(self._retry_forever(), name="stageflow mirror retries")

    async def stop(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            await asyncio.gather(self._retrying, return_exceptions=True)
        await self._store.close()

    async def _write(self, record: RunRecord) -> None:
        entries = {
            task_id: json.dumps(task.to_json_dict(), sort_keys=True)
            for task_id, task in record.status.tasks.items()
        }
        before = self._seen.get(record.run_id, {})
        changed = frozenset(task for task, entry in entries.items() if before.get(task) != entry)
        try:
            await self._store.mirror(record, changed)
        except StoreUnavailableError as error:
            MIRROR_WRITES.labels(result="error").inc()
            self._unhealthy(error)
            self._pending[record.run_id] = record
            MIRROR_PENDING.set(len(self._pending))
            return
        MIRROR_WRITES.labels(result="ok").inc()
        if record.run_id in self._seen:  # not a first sight (a resync): old ends are no lag
            now = utcnow()
            for task_id in changed:
                finished_at = record.status.tasks[task_id].finished_at
                if finished_at is not None:
                    MIRROR_LAG_SECONDS.observe(max(0.0, (now - finished_at).total_seconds()))
        self._pending.pop(record.run_id, None)
        MIRROR_PENDING.set(len(self._pending))
        self._seen[record.run_id] = entries

    def _unhealthy(self, error: Exception) -> None:
        if self._healthy:  # one line per outage, not per run or retry
            logger.warning("mirror writes to Redis fail (%s); retrying, then a resync", error)
        self._healthy = False

    async def _retry_forever(self) -> None:
        while True:
            await asyncio.sleep(self._retry_seconds)
            try:
                await self._tick()
            except Exception:
                logger.exception("mirror retry failed; trying again")

    async def _tick(self) -> None:
        try:
            await self._store.ping()
        except StoreUnavailableError as error:
            self._unhealthy(error)
            return
        if not self._healthy:
            logger.info("Redis answers again: resyncing the mirror")
            self._healthy = True
            self._pending.clear()
            MIRROR_PENDING.set(0)
            await self.resync()
            return
        for run_id, record in list(self._pending.items()):
            if record is _GONE:
                await self.forget(run_id)
            else:
                await self._write(record)
