"""The result cache: a task marked `cache` reuses the outputs of an earlier success with the
same inputs instead of running (Prefect's cache policies, Argo's `memoize`; docs/cache.md).

The runner asks a `RunCache` before a task's first attempt and tells it of the task's
success; the cache itself is behind the engine's `ResultCache` protocol (in memory, or in
Redis where every API replica and the operator see it: store/result_cache.py).

What a key covers is engine/cache_keys.py's.

What is kept: outputs (at most the 8 KiB a task may return) and, for an `until` loop, its
iterations: the loop is cached as a whole. Only successes are kept. Cache trouble (Redis
down) never fails a task: a lookup that fails is a miss, a put that fails is logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stageflow.engine.cache_keys import key_of
from stageflow.engine.inprocess import MAX_OUTPUT_BYTES
from stageflow.engine.interfaces import CacheEntry, ResultCache
from stageflow.models.status import CachedFrom, TaskStatus, utcnow

if TYPE_CHECKING:
    from stageflow.engine.plan import PlannedTask

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lookup:
    """What a lookup found: the key (to record a success under) and the entry, on a hit."""

    key: str
    hit: CacheEntry | None


class RunCache:
    """The result cache as one run sees it: the cache of the run's namespace, and the run's
    id (what a hit in another run names as `cachedFrom`)."""

    def __init__(self, cache: ResultCache, *, run_id: str) -> None:
        self._cache = cache
        self.run_id = run_id

    async def lookup(
        self,
        node: PlannedTask,
        params: dict[str, Any],
        *,
        item: Any,
        instance: bool,
        refresh: bool,
    ) -> Lookup:
        """The key of this run of `node`, and the entry recorded under it (none with
        `refresh`, or when the cache cannot answer). CacheKeyError: `cache.key` failed."""
        key = await key_of(node, params, item=item, instance=instance)
        if refresh:
            return Lookup(key, None)
        try:
            return Lookup(key, await self._cache.get(key))
        except Exception as error:  # the cache is an optimisation: trouble is a miss
            logger.warning("result cache lookup failed (%s): running the task", error)
            return Lookup(key, None)

    async def record(self, key: str, node: PlannedTask, task_id: str, status: TaskStatus) -> None:
        """Keep a succeeded task's outputs under `key`: never more than a task may return
        (executors refuse more already; the bound is the cache's own all the same)."""
        assert node.spec.cache is not None
        size = len(json.dumps(status.outputs, separators=(",", ":")).encode())
        if size > MAX_OUTPUT_BYTES:
            logger.info("outputs of %s are %d bytes: not cached", task_id, size)
            return
        entry = CacheEntry(
            outputs=status.outputs,
            run_id=self.run_id,
            task_id=task_id,
            iterations=status.iterations if node.spec.until is not None else None,
        )
        try:
            await self._cache.put(key, entry, ttl_seconds=node.spec.cache.ttl_seconds)
        except Exception as error:
            logger.warning("result of %s not cached: %s", task_id, error)


def entry_to_json(entry: CacheEntry) -> str:
    """An entry as the stores keep it."""
    return json.dumps(
        {
            "outputs": entry.outputs,
            "runId": entry.run_id,
            "task": entry.task_id,
            "iterations": entry.iterations,
        },
        separators=(",", ":"),
    )


def entry_from_json(text: str) -> CacheEntry:
    """An entry read back; ValueError if it is not one (a foreign or older value)."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("runId"), str):
        raise ValueError("not a cache entry")
    iterations = data.get("iterations")
    return CacheEntry(
        outputs=data.get("outputs"),
        run_id=data["runId"],
        task_id=str(data.get("task", "")),
        iterations=iterations if isinstance(iterations, int) else None,
    )


def reused(status: TaskStatus, entry: CacheEntry) -> str:
    """Mark a task's status as reusing `entry` (nothing ran: its attempts stay as they
    were, 0 in a new run); the message to end it with."""
    status.cached = True
    status.cached_from = CachedFrom(run_id=entry.run_id, task=entry.task_id)
    status.iterations = entry.iterations
    status.started_at = status.started_at or utcnow()
    return f"cached: the result of task {entry.task_id} in run {entry.run_id}"
