"""The operator's mirror in Redis: WorkflowRuns of every namespace, written by version.

The operator copies what its watch shows into Redis (operator/mirror.py batches and
retries; this module is its Redis side), so that API replicas read a run without asking
the apiserver. Apart from the namespace store (redis_store.py) because its writes differ:
they take the namespace from the WorkflowRun written, not from the store, and every one
is version-conditional, in one Lua script each, so a check and the write it guards are
atomic:

- a mirror write carries the WorkflowRun's resourceVersion and is a no-op (publishing
  nothing) unless it is newer than the `version` stored, and newer than a tombstone's;
  so the mirror never goes backwards, whatever order writes and resyncs arrive in.
  Kubernetes calls resourceVersion opaque, but every apiserver on etcd (and kine) makes
  it etcd's revision, a decimal integer that grows with every write: two decimal versions
  compare as integers (as strings by length then digits, so no precision is lost). A
  version that is not decimal cannot be ordered: it is written only when it differs
  from the one stored (arrival order, the watch stream's), never over a tombstone, and
  never pruned by a resync;
- a delete at a version older than the run stored (a run re-created under the same name)
  is a no-op;
- a prune (the resync) drops a run only if its stored version is not newer than the
  version of the listing that did not contain it: the list proves it gone.

The resync's helpers are here too: which runs are stored, and whether this Redis is the
server the mirror last resynced against (a restart or a flush means it must resync).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from stageflow.models.records import RunEvent, RunRecord
from stageflow.store.base import DEFAULT_FINISHED_TTL_SECONDS
from stageflow.store.connection import RedisConnectionSettings, connect
from stageflow.store.keys import NAMESPACES, runs_key, synced_key
from stageflow.store.redis_runs import (
    ANY_VERSION,
    TOMBSTONE_SECONDS,
    RedisRuns,
    drop_keys,
    translated,
)

_WRITE_BATCH = 100


def _run_id(info: Mapping[str, Any]) -> str:
    """INFO's run_id; a server (or proxy) that does not say is one server for ever, so
    then only a missing marker (a flush, or a restart empty) shows that data was lost."""
    return str(info.get("run_id", "unknown"))


def _namespace_of(record: RunRecord) -> str:
    if not record.namespace:
        raise ValueError(f"mirrored run {record.run_id} has no namespace")
    return record.namespace


class RedisMirrorWriter(RedisRuns):
    """Writes WorkflowRuns as the operator observes them, into the namespace each names.

    The operator builds it `beside` its namespace store, on the same client and pool
    (that store also keeps in-process tasks' logs); tests may open one `from_url`.
    """

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connection: RedisConnectionSettings | None = None,
        finished_ttl_seconds: int = DEFAULT_FINISHED_TTL_SECONDS,
    ) -> RedisMirrorWriter:
        """A writer on its own bounded pool (store/connection.py); close it when done."""
        return cls(connect(url, connection), finished_ttl_seconds=finished_ttl_seconds)

    @classmethod
    def beside(cls, runs: RedisRuns) -> RedisMirrorWriter:
        """A writer on `runs`' client, pool, scripts and expiry: one pool per process.
        Close `runs`, not the writer."""
        return cls(runs._redis, finished_ttl_seconds=runs._finished_ttl, scripts=runs._scripts)

    @translated
    async def mirror(
        self,
        record: RunRecord,
        changed: frozenset[str],
        *,
        version: str | None,
        unfinished_ttl: int | None = None,
    ) -> bool:
        """Write a WorkflowRun as observed: create or replace it, set its expiry once
        finished, and publish the `changed` tasks to subscribers, unless what is stored is
        as new as `version` (its resourceVersion). Returns whether it wrote.
        `unfinished_ttl`: a write from outside the mirror (the API's read repair) of a run
        still under way expires after that many seconds unless the mirror writes it again:
        without a live mirror it would never be brought up to date."""
        return await self._write(
            record,
            namespace=_namespace_of(record),
            version=version,
            event=RunEvent.of(record.run_id, record.status, changed),
            unfinished_ttl=unfinished_ttl,
        )

    @translated
    async def mirror_many(
        self, writes: Sequence[tuple[RunRecord, frozenset[str], str | None]]
    ) -> list[bool]:
        """`mirror` for many runs (a resync), pipelined: one round trip per hundred runs."""
        written: list[bool] = []
        for start in range(0, len(writes), _WRITE_BATCH):
            async with self._redis.pipeline(transaction=False) as pipe:
                for record, changed, version in writes[start : start + _WRITE_BATCH]:
                    event = RunEvent.of(record.run_id, record.status, changed)
                    keys, args = self._write_args(
                        record, namespace=_namespace_of(record), version=version, event=event
                    )
                    await self._scripts.write_run(keys=keys, args=args, client=pipe)
                written += [bool(result) for result in await pipe.execute()]
        return written

    @translated
    async def delete_mirrored(self, *, namespace: str, run_id: str, version: str | None) -> bool:
        """Drop a run whose WorkflowRun was deleted at `version` (None: at any version)."""
        return await self._drop(namespace=namespace, run_id=run_id, version=version or ANY_VERSION)

    @translated
    async def prune(self, *, namespace: str, run_id: str, listed_at: str) -> bool:
        """Drop a run a listing at resourceVersion `listed_at` did not contain, if that
        proves it gone: what is stored is no newer than the listing."""
        return bool(
            await self._scripts.prune_run(
                keys=drop_keys(namespace, run_id),
                args=[run_id, listed_at, str(TOMBSTONE_SECONDS)],
            )
        )

    @translated
    async def run_ids(self, namespaces: Iterable[str] | None = None) -> set[tuple[str, str]]:
        """(namespace, run id) of every run listed here, in `namespaces` (None: all)."""
        if namespaces is None:
            namespaces = cast(set[str], await self._redis.smembers(NAMESPACES))
        found: set[tuple[str, str]] = set()
        for namespace in namespaces:
            ids = cast(list[str], await self._redis.zrange(runs_key(namespace), 0, -1))
            found.update((namespace, run_id) for run_id in ids)
        return found

    @translated
    async def server_id(self) -> str:
        """This Redis server's run id: it changes whenever the server restarts."""
        return _run_id(await self._redis.info("server"))

    @translated
    async def sync_state(self, scope: str) -> tuple[str, str | None]:
        """(this server's run id, the one the mirror of `scope` last resynced against).
        They differ after a restart (the data may be empty or an old snapshot), and the
        second is None after a flush: either way the mirror must resync."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.info("server")
            pipe.get(synced_key(scope))
            info, synced = await pipe.execute()
        return _run_id(info), synced

    @translated
    async def mirrored(self, namespace: str) -> bool:
        """Whether an operator mirrors `namespace` into this Redis (its mirror of the
        namespace, or of every namespace, has synced here): only then does a write from
        elsewhere (the API's read repair) get kept up to date."""
        found = await self._redis.exists(synced_key(namespace), synced_key("*"))
        return bool(found)

    @translated
    async def mark_synced(self, scope: str, server_id: str) -> None:
        await self._redis.set(synced_key(scope), server_id)
