"""The Redis store of one namespace: what an API replica reads, and its local backend writes.

Shared by every API replica: a run executes in the replica that accepted it, its status
goes here, and every replica reads, lists and streams it (docs: Configuration, "Several
API replicas"). The Kubernetes backend reads the same keys, written by the operator's mirror
(redis_mirror.py); this class never writes with a version, so it needs no ordering:

- a create or status write carries no version: one runner in one process writes a run's
  status in order, so there is nothing to order against; such runs are never pruned by
  the operator's resync (nothing could prove them gone);
- a status write (update_status.lua) writes nothing if the run was deleted (so a runner
  finishing after a DELETE cannot bring the run back), sets the expiry when the run
  finishes, and publishes the event in the same step;
- a delete leaves a tombstone at any version (`*`), so no mirror write brings it back.

The key layout is keys.py's; the scripts are lua/*.lua; what this shares with the
mirror writer (the run's encoding, the whole-run write, the delete) is redis_runs.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import cast

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from stageflow.engine import RunPhase, RunStatus
from stageflow.models.records import RunEvent, RunRecord, RunSummary
from stageflow.store.base import (
    DEFAULT_FINISHED_TTL_SECONDS,
    DEFAULT_NAMESPACE,
    RETRY_CLAIM_SECONDS,
    Control,
)
from stageflow.store.catalog import CLAIM_SECONDS
from stageflow.store.connection import RedisConnectionSettings, connect
from stageflow.store.fanout import PubSubFanout
from stageflow.store.keys import (
    CONTROL,
    events_channel,
    logs_key,
    retry_claim_key,
    run_key,
    runs_key,
    tasks_key,
)
from stageflow.store.pages import Cursor, RunPage
from stageflow.store.redis_admission import RedisAdmission
from stageflow.store.redis_catalog import (
    RedisClaims,
    RedisSchedulerLease,
    RedisSchedules,
    RedisTemplates,
)
from stageflow.store.redis_runs import (
    ANY_VERSION,
    SUMMARY_FIELDS,
    RedisRuns,
    record_from_hash,
    run_fields,
    score,
    summary_from_row,
    translated,
)
from stageflow.store.result_cache import RedisResultCache

_SCAN_BATCH = 200


class RedisStore(RedisRuns):
    """The RunStore of one namespace (STAGEFLOW_NAMESPACE for the API): every run ID it
    is given names a run of `namespace`, and only a listing may ask for another."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        finished_ttl_seconds: int = DEFAULT_FINISHED_TTL_SECONDS,
        fanout: PubSubFanout | None = None,
    ) -> None:
        super().__init__(client, finished_ttl_seconds=finished_ttl_seconds)
        self._namespace = namespace
        self._fanout = fanout or PubSubFanout(client, keep=CONTROL)  # one per process
        self._admission: RedisAdmission | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        connection: RedisConnectionSettings | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        finished_ttl_seconds: int = DEFAULT_FINISHED_TTL_SECONDS,
    ) -> RedisStore:
        """A store on its own bounded pool (store/connection.py)."""
        return cls(
            connect(url, connection),
            namespace=namespace,
            finished_ttl_seconds=finished_ttl_seconds,
        )

    @property
    def namespace(self) -> str:
        return self._namespace

    def templates(self, *, keep: int) -> RedisTemplates:
        return RedisTemplates(self._redis, self._namespace, keep=keep)

    def schedules(self) -> RedisSchedules:
        return RedisSchedules(self._redis, self._namespace)

    def scheduler_lease(self) -> RedisSchedulerLease:
        return RedisSchedulerLease(self._redis, self._namespace)

    def admission(self, *, lease_seconds: float) -> RedisAdmission:
        if self._admission is None:
            self._admission = RedisAdmission(
                self._redis, self._namespace, lease_seconds=lease_seconds
            )
        return self._admission

    def result_cache(self, *, max_entries: int, max_bytes: int) -> RedisResultCache:
        """Bounded by entries; each is at most a task's outputs, so `max_bytes` is not used."""
        return RedisResultCache(self._redis, self._namespace, max_entries=max_entries)

    def claims(self) -> RedisClaims:
        return RedisClaims(self._redis, self._namespace, seconds=int(CLAIM_SECONDS))

    @property
    def pool(self) -> aioredis.ConnectionPool:
        return self._redis.connection_pool

    def in_namespace(self, namespace: str) -> RedisStore:
        """The same client and pool, for runs of `namespace` (close only the original)."""
        if namespace == self._namespace:
            return self
        return RedisStore(
            self._redis,
            namespace=namespace,
            finished_ttl_seconds=self._finished_ttl,
            fanout=self._fanout,
        )

    @translated
    async def create(self, record: RunRecord) -> None:
        await self._write(record, namespace=self._namespace, version=None, event=None)

    @translated
    async def update_status(self, run_id: str, status: RunStatus, changed: frozenset[str]) -> bool:
        run = run_fields(status, run_id)
        event = RunEvent.of(run_id, status, changed).model_dump_json(
            by_alias=True, exclude_none=True
        )
        args: list[str] = ["1" if status.phase.finished else "0", event, str(len(run))]
        for field, value in run.items():
            args += (field, value)
        for task_id in changed:
            if task_id in status.tasks:
                args += (task_id, status.tasks[task_id].phase.value)
        namespace = self._namespace
        written = await self._scripts.update_status(
            keys=[
                run_key(namespace, run_id),
                tasks_key(namespace, run_id),
                events_channel(namespace, run_id),
            ],
            args=args,
        )
        return bool(written)

    @translated
    async def get(self, run_id: str, *, folded: bool = False) -> RunRecord | None:
        fields = cast(
            Mapping[str, str], await self._redis.hgetall(run_key(self._namespace, run_id))
        )
        return record_from_hash(fields, unfolded=not folded) if fields else None

    @translated
    async def task_phases(self, run_id: str) -> dict[str, str] | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(run_key(self._namespace, run_id))
            pipe.hgetall(tasks_key(self._namespace, run_id))
            exists, phases = await pipe.execute()
        return dict(phases) if exists else None

    @translated
    async def list(
        self,
        *,
        phase: RunPhase | None,
        limit: int,
        cursor: Cursor | None,
        namespace: str | None = None,
    ) -> RunPage:
        namespace = namespace or self._namespace
        runs = runs_key(namespace)
        newest: str | int = "+inf" if cursor is None else score(cursor.created_at)
        found: list[RunSummary] = []
        offset = 0
        while len(found) <= limit:
            ids = cast(
                list[str],
                await self._redis.zrevrangebyscore(
                    runs, newest, "-inf", start=offset, num=_SCAN_BATCH
                ),
            )
            if not ids:
                break
            offset += len(ids)
            async with self._redis.pipeline(transaction=False) as pipe:
                for run_id in ids:
                    pipe.hmget(run_key(namespace, run_id), list(SUMMARY_FIELDS))
                rows: list[list[str | None]] = await pipe.execute()
            gone = [run_id for run_id, row in zip(ids, rows, strict=True) if row[0] is None]
            if gone:
                await self._redis.zrem(runs, *gone)
                offset -= len(gone)
            for row in rows:
                if row[0] is None:
                    continue
                summary = summary_from_row(row)
                if cursor is not None and not cursor.is_after(summary):
                    continue
                if phase is None or summary.phase is phase:
                    found.append(summary)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            next_cursor = Cursor(created_at=page[-1].created_at, run_id=page[-1].run_id).encode()
        return RunPage(items=page, next_cursor=next_cursor)

    @translated
    async def mark_cancel_requested(self, run_id: str) -> bool:
        return bool(
            await self._scripts.set_if_exists(
                keys=[run_key(self._namespace, run_id)], args=["cancelRequested", "1"]
            )
        )

    @translated
    async def claim_retry(self, run_id: str, after: str) -> bool:
        key = retry_claim_key(self._namespace, run_id, after)
        return bool(await self._redis.set(key, "1", nx=True, ex=RETRY_CLAIM_SECONDS))

    @translated
    async def save_logs(self, run_id: str, logs: Mapping[str, str]) -> None:
        key = logs_key(self._namespace, run_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            fields: dict[FieldT, EncodableT] = {task: text for task, text in logs.items()}
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self._finished_ttl)
            await pipe.execute()

    @translated
    async def get_log(self, run_id: str, task_id: str) -> str | None:
        text = await self._redis.hget(logs_key(self._namespace, run_id), task_id)
        return None if text is None else str(text)

    @translated
    async def get_logs(self, run_id: str, task_ids: Collection[str]) -> dict[str, str]:
        ids = list(task_ids)
        if not ids:
            return {}
        texts = await self._redis.hmget(logs_key(self._namespace, run_id), ids)
        return {
            task_id: str(text) for task_id, text in zip(ids, texts, strict=True) if text is not None
        }

    @translated
    async def delete(self, run_id: str) -> bool:
        return await self._drop(namespace=self._namespace, run_id=run_id, version=ANY_VERSION)

    @asynccontextmanager
    async def subscribe(self, run_id: str) -> AsyncIterator[AsyncIterator[RunEvent]]:
        async with self._listen(events_channel(self._namespace, run_id)) as messages:
            yield (RunEvent.model_validate_json(data) async for data in messages)

    @translated
    async def send_control(self, message: Control) -> None:
        await self._redis.publish(CONTROL, message.model_dump_json())

    @asynccontextmanager
    async def control(self) -> AsyncIterator[AsyncIterator[Control]]:
        async with self._listen(CONTROL) as messages:
            yield (Control.model_validate_json(data) async for data in messages)

    @asynccontextmanager
    async def _listen(self, channel: str) -> AsyncIterator[AsyncIterator[str]]:
        """Messages of `channel`, through the process's one shared subscriber."""
        async with self._fanout.listen(channel) as messages:
            yield messages

    @translated
    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        if self._admission is not None:
            await self._admission.close()
        await self._fanout.close()
        await super().close()
