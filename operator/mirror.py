"""The Redis mirror: what the operator observes on the watch stream, copied for fast reads.

It mirrors every WorkflowRun event it sees (not only its own writes), so the mirror
also follows changes made by others. Every write carries the WorkflowRun's
resourceVersion and Redis applies it only if it is newer than what it holds (one Lua
script, store/redis_store.py), so no interleaving of watch events, retried writes and
resyncs can make the mirror go backwards.

- A write that fails (Redis down, or no pooled connection within the pool's timeout)
  is kept, newest observation per run, and retried every `retry_seconds`; one log line
  per outage, not per write. A failed write never starts a resync. Until a retry tick
  finds Redis answering, further writes are kept without being tried.
- A resync lists every WorkflowRun and writes them (pipelined, still conditional). It
  drops only runs the list proves gone: absent from it, and stored at a version no
  newer than the list's own. It runs at start-up, when Redis is a different server
  than the one last synced (restarted: it may have come back empty or from an old
  snapshot) or lost the mirror's marker (flushed), and again after a resync that failed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from stageflow.engine.status import utcnow
from stageflow.kube import KubeError, RunListing, is_deleted, record_from_object
from stageflow.operator.metrics import MIRROR_LAG_SECONDS, MIRROR_PENDING, MIRROR_WRITES
from stageflow.store import (
    InvalidRunIdError,
    RedisStore,
    RunRecord,
    StoreUnavailableError,
    checked_run_id,
)

logger = logging.getLogger(__name__)

RunKey = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class _Write:
    record: RunRecord
    version: str | None


@dataclass(frozen=True)
class _Delete:
    version: str | None


def _version(obj: dict[str, Any]) -> str | None:
    version = obj.get("metadata", {}).get("resourceVersion")
    return str(version) if version else None


def _entries(record: RunRecord) -> dict[str, str]:
    """Task id -> its status entry as JSON: what tells which tasks changed."""
    return {
        task_id: json.dumps(task.to_json_dict(), sort_keys=True)
        for task_id, task in record.status.tasks.items()
    }


class RedisMirror:
    def __init__(
        self,
        store: RedisStore,
        *,
        retry_seconds: float,
        list_runs: Callable[[], Awaitable[RunListing]],
        namespace: str | None,
    ) -> None:
        """`list_runs` lists what the operator watches: `namespace`, or all (None)."""
        self._store = store
        self._retry_seconds = retry_seconds
        self._list_runs = list_runs
        self._namespaces = None if namespace is None else [namespace]
        self._scope = namespace or "*"
        self._seen: dict[RunKey, dict[str, str]] = {}  # what was written, to publish changes
        self._pending: dict[RunKey, _Write | _Delete] = {}  # failed writes, newest only
        self._resync_needed = True
        self._resync_lock = asyncio.Lock()
        self._down = False
        self._retrying: asyncio.Task[None] | None = None
        self.resyncs = 0  # completed resyncs (tests and logs read it)

    @property
    def store(self) -> RedisStore:
        return self._store

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def observe(self, obj: dict[str, Any]) -> None:
        if not _mirrored(obj["metadata"]["name"]):
            return
        record = record_from_object(obj)
        key = (record.namespace or "", record.run_id)
        await self._apply(key, _Write(record, _version(obj)))

    async def forget(self, name: str, *, namespace: str, version: str | None = None) -> None:
        """The WorkflowRun is deleted (at `version`, if known): drop it from the mirror."""
        if _mirrored(name):
            await self._apply((namespace, name), _Delete(version))

    async def resync(self) -> None:
        """Write every WorkflowRun; drop the runs the list proves gone. Never raises: a
        resync that fails is tried again on the next retry tick."""
        done_before = self.resyncs
        async with self._resync_lock:
            if self.resyncs > done_before and not self._resync_needed:
                return  # one finished while this waited for it: nothing asks for another
            self._resync_needed = True
            try:
                listing = await self._list_runs()
            except KubeError as error:
                logger.warning("mirror resync: listing WorkflowRuns failed (%s); will retry", error)
                return
            try:
                await self._resync(listing)
            except StoreUnavailableError as error:
                self._went_down(error)
                return
            self._resync_needed = False
            self.resyncs += 1

    async def _resync(self, listing: RunListing) -> None:
        server = await self._store.server_id()
        listed: set[RunKey] = set()
        writes: list[tuple[RunKey, RunRecord, str | None, dict[str, str]]] = []
        for obj in listing.items:
            if not _mirrored(obj["metadata"]["name"]):
                continue
            record = record_from_object(obj)
            key = (record.namespace or "", record.run_id)
            listed.add(key)
            if is_deleted(obj):
                await self._store.delete_mirrored(
                    namespace=key[0], run_id=key[1], version=_version(obj)
                )
                self._seen.pop(key, None)
                continue
            writes.append((key, record, _version(obj), _entries(record)))
        written = await self._store.mirror_many(
            [
                (record, self._changed(key, entries), version)
                for key, record, version, entries in writes
            ]
        )
        for (key, _, _, entries), done in zip(writes, written, strict=True):
            if done:
                self._seen[key] = entries
        if listing.resource_version is not None:
            for namespace, run_id in await self._store.run_ids(self._namespaces) - listed:
                if await self._store.prune(
                    namespace=namespace, run_id=run_id, listed_at=listing.resource_version
                ):
                    self._seen.pop((namespace, run_id), None)
        await self._store.mark_synced(self._scope, server)
        logger.info("mirror resynced: %d runs listed, %d written", len(listed), sum(written))

    def start(self) -> None:
        self._retrying = asyncio.create_task(self._retry_forever(), name="stageflow mirror retries")

    async def stop(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            await asyncio.gather(self._retrying, return_exceptions=True)
        await self._store.close()

    def _changed(self, key: RunKey, entries: dict[str, str]) -> frozenset[str]:
        before = self._seen.get(key, {})
        return frozenset(task for task, entry in entries.items() if before.get(task) != entry)

    async def _apply(self, key: RunKey, change: _Write | _Delete) -> bool:
        """Write one change; keep it for a retry if Redis cannot take it now (or is known
        to be down: then the watch handler does not wait out the client's retries)."""
        if self._down:
            self._pending[key] = change
            MIRROR_PENDING.set(len(self._pending))
            return False
        try:
            if isinstance(change, _Write):
                entries = _entries(change.record)
                changed = self._changed(key, entries)
                first_sight = key not in self._seen
                if await self._store.mirror(change.record, changed, version=change.version):
                    self._seen[key] = entries
                    if not first_sight:  # a first sight (a resync, a restart): no lag to tell
                        _observe_lag(change.record, changed)
            else:
                self._seen.pop(key, None)
                await self._store.delete_mirrored(
                    namespace=key[0], run_id=key[1], version=change.version
                )
        except StoreUnavailableError as error:
            MIRROR_WRITES.labels(result="error").inc()
            self._pending[key] = change
            MIRROR_PENDING.set(len(self._pending))
            self._went_down(error)
            return False
        MIRROR_WRITES.labels(result="ok").inc()
        self._pending.pop(key, None)
        MIRROR_PENDING.set(len(self._pending))
        return True

    def _went_down(self, error: StoreUnavailableError) -> None:
        if not self._down:
            self._down = True
            logger.warning(
                "mirror writes failing (%s); retrying every %ss", error, self._retry_seconds
            )

    async def _retry_forever(self) -> None:
        while True:
            await asyncio.sleep(self._retry_seconds)
            try:
                await self._tick()
            except Exception:
                logger.exception("mirror retry failed; trying again")

    async def _tick(self) -> None:
        try:
            server, synced = await self._store.sync_state(self._scope)
        except StoreUnavailableError as error:
            self._went_down(error)
            return
        if self._down:
            self._down = False
            logger.info("Redis answers again: %d mirror writes to retry", len(self._pending))
        if server != synced:
            self._resync_needed = True
        for key, change in list(self._pending.items()):
            if self._pending.get(key) is change and not await self._apply(key, change):
                return  # down again: the rest waits for the next tick
        if self._resync_needed:
            await self.resync()


def _mirrored(name: str) -> bool:
    """Only runs with a run ID (a UUID, what the API gives every run) are mirrored: the API
    serves no other name, and Redis keys are built only from checked IDs. A WorkflowRun made
    with kubectl under another name still runs, and kubectl shows its status."""
    try:
        checked_run_id(name)
    except InvalidRunIdError:
        return False
    return True


def _observe_lag(record: RunRecord, changed: frozenset[str]) -> None:
    """Task end -> mirrored, for the tasks this write brought to an end."""
    now = utcnow()
    for task_id in changed:
        finished_at = record.status.tasks[task_id].finished_at
        if finished_at is not None:
            MIRROR_LAG_SECONDS.observe(max(0.0, (now - finished_at).total_seconds()))
