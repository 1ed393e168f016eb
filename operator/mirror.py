"""The Redis mirror: what the operator observes on the watch stream, copied for fast reads.

It mirrors every WorkflowRun event it sees (not only its own writes), so the mirror
also follows changes made by others. Every write carries the WorkflowRun's
resourceVersion and Redis applies it only if it is newer than what it holds (one Lua
script, store/redis_mirror.py), so no interleaving of watch events, retried writes and
resyncs can make the mirror go backwards.

- Batched: an observation is kept, newest per run, and a flusher writes what was kept
  every `batch_seconds` (50 ms) in one pipelined round trip. Under load that is one
  Redis call for dozens of runs instead of one per watch event, and a run whose
  creation and end fall in one window is written once; the record is parsed from the
  WorkflowRun only then (the parse was 8% of the operator's CPU under load).
- A write that fails (Redis down, or no pooled connection within the pool's timeout)
  stays kept and is retried every `retry_seconds`; one log line per outage, not per
  write. A failed write never starts a resync. Until a retry tick finds Redis
  answering, further observations are kept without being tried.
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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from stageflow.kube import KubeError, ObjectKey, RunListing, is_deleted, record_from_object
from stageflow.models.records import InvalidRunIdError, RunRecord, checked_run_id
from stageflow.models.status import utcnow
from stageflow.models.task_ids import expand_ids
from stageflow.operator.metrics import MIRROR_LAG_SECONDS, MIRROR_PENDING, MIRROR_WRITES
from stageflow.store import RedisMirrorWriter, RedisStore, StoreUnavailableError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Write:
    obj: dict[str, Any]  # the WorkflowRun as observed; parsed into a record when written
    version: str | None


@dataclass(frozen=True)
class _Delete:
    version: str | None


def _version(obj: Mapping[str, Any]) -> str | None:
    version = obj.get("metadata", {}).get("resourceVersion")
    return str(version) if version else None


def _entries(record: RunRecord) -> dict[str, str]:
    """Task id -> its status entry as JSON: what tells which tasks changed. A big run's
    status is read folded: a group's members share its entry's JSON (and add their
    outputs'), one dump per group, not per member."""
    status = record.status
    entries = {
        task_id: json.dumps(task.to_json_dict(), sort_keys=True)
        for task_id, task in status.tasks.items()
    }
    for group in status.folded or ():
        like = json.dumps(group.like.to_json_dict(), sort_keys=True)
        outputs = group.outputs or {}
        for task_id in expand_ids(group.tasks):
            output = outputs.get(task_id)
            entries[task_id] = like if output is None else like + json.dumps(output)
    return entries


class RedisMirror:
    def __init__(
        self,
        store: RedisStore,
        *,
        retry_seconds: float,
        list_runs: Callable[[], Awaitable[RunListing]],
        namespace: str | None,
        batch_seconds: float = 0.05,
    ) -> None:
        """`list_runs` lists what the operator watches: `namespace`, or all (None). The
        mirror writes through a writer on `store`'s pool, and closes `store` when it stops."""
        self._store = store
        self._writer = RedisMirrorWriter.beside(store)
        self._retry_seconds = retry_seconds
        self._batch_seconds = batch_seconds
        self._kick = asyncio.Event()  # something is kept: the flusher has work
        self._flushing: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()
        self._list_runs = list_runs
        self._namespaces = None if namespace is None else [namespace]
        self._scope = namespace or "*"
        self._seen: dict[ObjectKey, dict[str, str]] = {}  # what was written, to publish changes
        self._pending: dict[ObjectKey, _Write | _Delete] = {}  # not yet written, newest only
        self._resync_needed = True
        self._resync_lock = asyncio.Lock()
        self._down = False
        self._retrying: asyncio.Task[None] | None = None
        self.resyncs = 0  # completed resyncs (tests and logs read it)

    @property
    def store(self) -> RedisStore:
        """The namespace store the writer shares a pool with (in-process tasks' logs)."""
        return self._store

    @property
    def writer(self) -> RedisMirrorWriter:
        """The Redis side: version-conditional writes and the resync's helpers."""
        return self._writer

    @property
    def pending(self) -> int:
        return len(self._pending)

    def observe(self, obj: dict[str, Any]) -> None:
        """A WorkflowRun as observed: kept, and written with the next batch."""
        metadata = obj["metadata"]
        if mirrored(metadata["name"]):
            self._keep(ObjectKey.of(metadata), _Write(obj, _version(obj)))

    def forget(self, name: str, *, namespace: str, version: str | None = None) -> None:
        """The WorkflowRun is deleted (at `version`, if known): dropped with the next batch."""
        if mirrored(name):
            self._keep(ObjectKey(namespace, name), _Delete(version))

    def _keep(self, key: ObjectKey, change: _Write | _Delete) -> None:
        self._pending[key] = change
        MIRROR_PENDING.set(len(self._pending))
        if not self._down:
            self._kick.set()

    async def flush(self) -> bool:
        """Write everything kept, now; False if Redis could not take it (it stays kept)."""
        async with self._flush_lock:
            batch = dict(self._pending)
            if not batch:
                return True
            try:
                await self._write_batch(batch)
            except StoreUnavailableError as error:
                MIRROR_WRITES.labels(result="error").inc(len(batch))
                self._went_down(error)
                return False
            MIRROR_WRITES.labels(result="ok").inc(len(batch))
            for key, change in batch.items():
                if self._pending.get(key) is change:  # not replaced by a newer one meanwhile
                    del self._pending[key]
            MIRROR_PENDING.set(len(self._pending))
            return True

    async def _write_batch(self, batch: dict[ObjectKey, _Write | _Delete]) -> None:
        writes: list[tuple[ObjectKey, RunRecord, str | None, dict[str, str]]] = []
        for key, change in batch.items():
            if isinstance(change, _Delete):
                self._seen.pop(key, None)
                await self._writer.delete_mirrored(
                    namespace=key[0], run_id=key[1], version=change.version
                )
                continue
            try:
                record = record_from_object(change.obj, unfolded=False)
            except ValueError as error:  # pydantic's ValidationError is one
                logger.warning("WorkflowRun %s/%s not mirrored: %s", *key, error)
                continue
            writes.append((key, record, change.version, _entries(record)))
        changes = [self._changed(key, entries) for key, _, _, entries in writes]
        written = await self._writer.mirror_many(
            [
                (record, changed, version)
                for (_, record, version, _), changed in zip(writes, changes, strict=True)
            ]
        )
        for (key, record, _, entries), changed, done in zip(writes, changes, written, strict=True):
            if done:
                if key in self._seen:  # a first sight (a resync, a restart): no lag to tell
                    _observe_lag(record, changed)
                self._seen[key] = entries

    async def _flush_forever(self) -> None:
        while True:
            await self._kick.wait()
            await asyncio.sleep(self._batch_seconds)  # the window: what comes in it joins
            self._kick.clear()
            if not self._down:
                try:
                    await self.flush()
                except Exception:
                    logger.exception("mirror flush failed; what it kept is tried again")

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
        server = await self._writer.server_id()
        listed: set[ObjectKey] = set()
        writes: list[tuple[ObjectKey, RunRecord, str | None, dict[str, str]]] = []
        for obj in listing.items:
            if not mirrored(obj["metadata"]["name"]):
                continue
            record = record_from_object(obj, unfolded=False)
            key = ObjectKey(record.namespace or "", record.run_id)
            listed.add(key)
            if is_deleted(obj):
                await self._writer.delete_mirrored(
                    namespace=key.namespace, run_id=key.name, version=_version(obj)
                )
                self._seen.pop(key, None)
                continue
            writes.append((key, record, _version(obj), _entries(record)))
        written = await self._writer.mirror_many(
            [
                (record, self._changed(key, entries), version)
                for key, record, version, entries in writes
            ]
        )
        for (key, _, _, entries), done in zip(writes, written, strict=True):
            if done:
                self._seen[key] = entries
        if listing.resource_version is not None:
            for namespace, run_id in await self._writer.run_ids(self._namespaces) - listed:
                if await self._writer.prune(
                    namespace=namespace, run_id=run_id, listed_at=listing.resource_version
                ):
                    self._seen.pop(ObjectKey(namespace, run_id), None)
        await self._writer.mark_synced(self._scope, server)
        logger.info("mirror resynced: %d runs listed, %d written", len(listed), sum(written))

    def start(self) -> None:
        self._retrying = asyncio.create_task(self._retry_forever(), name="stageflow mirror retries")
        self._flushing = asyncio.create_task(self._flush_forever(), name="stageflow mirror")

    async def stop(self) -> None:
        tasks = [task for task in (self._retrying, self._flushing) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not self._down:
            await self.flush()  # what the last window kept
        await self._store.close()

    def _changed(self, key: ObjectKey, entries: dict[str, str]) -> frozenset[str]:
        before = self._seen.get(key, {})
        return frozenset(task for task, entry in entries.items() if before.get(task) != entry)

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
            server, synced = await self._writer.sync_state(self._scope)
        except StoreUnavailableError as error:
            self._went_down(error)
            return
        if self._down:
            self._down = False
            logger.info("Redis answers again: %d mirror writes to retry", len(self._pending))
        if server != synced:
            self._resync_needed = True
        if not await self.flush():
            return  # down again: the rest waits for the next tick
        if self._resync_needed:
            await self.resync()


def mirrored(name: str) -> bool:
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
        task = record.status.tasks.get(task_id)  # a folded one has no time of its own
        finished_at = task.finished_at if task is not None else None
        if finished_at is not None:
            MIRROR_LAG_SECONDS.observe(max(0.0, (now - finished_at).total_seconds()))
