"""Templates, schedules and the scheduler's lease in Redis (local backend, several API
replicas): the protocols of catalog.py, each read-modify-write a WATCH transaction, so two
replicas writing the same template or schedule at once both land, one after the other."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from stageflow.models.schedule import ScheduleRecord, ScheduleSpec, ScheduleStatus
from stageflow.models.status import utcnow
from stageflow.models.template import TemplateRecord, WorkflowTemplateSpec
from stageflow.store.catalog import DEFAULT_REVISION_HISTORY
from stageflow.store.keys import (
    claim_key,
    scheduler_lease_key,
    schedules_key,
    template_revisions_key,
    templates_key,
)
from stageflow.store.redis_runs import translated

# Renew only one's own lease: compare and extend in one step.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) and 1 or 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisTemplates:
    def __init__(
        self, client: aioredis.Redis, namespace: str, *, keep: int = DEFAULT_REVISION_HISTORY
    ) -> None:
        self._redis, self._namespace, self._keep = client, namespace, keep

    @translated
    async def put(self, name: str, spec: WorkflowTemplateSpec) -> tuple[TemplateRecord, bool]:
        index, revisions = templates_key(self._namespace), self._revisions(name)
        outcome: list[tuple[TemplateRecord, bool]] = []

        async def write(pipe: Pipeline) -> None:
            outcome.clear()
            raw = await pipe.hget(index, name)
            current = TemplateRecord.model_validate_json(raw) if raw else None
            digest = spec.digest()
            if current is not None and current.digest == digest:
                outcome.append((current, False))
                return
            now = utcnow()
            record = TemplateRecord(
                name=name,
                revision=1 if current is None else current.revision + 1,
                digest=digest,
                created_at=now if current is None else current.created_at,
                updated_at=now,
                spec=spec,
            )
            text = record.model_dump_json(by_alias=True, exclude_none=True)
            kept = sorted(int(key) for key in await pipe.hkeys(revisions))
            stale = [str(old) for old in [*kept, record.revision][: -self._keep]]
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(index, name, text)
            pipe.hset(revisions, str(record.revision), text)
            if stale:
                pipe.hdel(revisions, *stale)
            outcome.append((record, current is None))

        await self._redis.transaction(write, index, revisions)
        record, created = outcome[0]
        return await self._with_revisions(record), created

    @translated
    async def get(self, name: str, revision: int | None = None) -> TemplateRecord | None:
        raw = await self._redis.hget(templates_key(self._namespace), name)
        if raw is None:
            return None
        if revision is not None:
            raw = await self._redis.hget(self._revisions(name), str(revision))
            if raw is None:
                return None
        return await self._with_revisions(TemplateRecord.model_validate_json(raw))

    @translated
    async def list(self) -> list[TemplateRecord]:
        found = await self._redis.hgetall(templates_key(self._namespace))
        records = [TemplateRecord.model_validate_json(raw) for raw in found.values()]
        return [await self._with_revisions(record) for record in sorted(records, key=_name)]

    @translated
    async def delete(self, name: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(templates_key(self._namespace), name)
            pipe.delete(self._revisions(name))
            removed, _ = await pipe.execute()
        return bool(removed)

    def _revisions(self, name: str) -> str:
        return template_revisions_key(self._namespace, name)

    async def _with_revisions(self, record: TemplateRecord) -> TemplateRecord:
        kept = await self._redis.hkeys(self._revisions(record.name))
        return record.model_copy(update={"revisions": sorted(int(key) for key in kept)})


def _name(record: TemplateRecord) -> str:
    return record.name


class RedisSchedules:
    """Each schedule is one JSON field of the namespace's hash, `version` a counter in it."""

    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._redis, self._key = client, schedules_key(namespace)

    @translated
    async def put(self, name: str, spec: ScheduleSpec) -> tuple[ScheduleRecord, bool]:
        def change(current: ScheduleRecord | None) -> ScheduleRecord:
            if current is None:
                return ScheduleRecord(
                    name=name, uid=str(uuid.uuid4()), created_at=utcnow(), spec=spec
                )
            return current.model_copy(update={"spec": spec})

        created: list[bool] = []

        def noting(current: ScheduleRecord | None) -> ScheduleRecord | None:
            created[:] = [current is None]
            return change(current)

        record = await self._update(name, noting)
        assert record is not None
        return record, created[0]

    @translated
    async def get(self, name: str) -> ScheduleRecord | None:
        raw = await self._redis.hget(self._key, name)
        return ScheduleRecord.model_validate_json(raw) if raw else None

    @translated
    async def list(self) -> list[ScheduleRecord]:
        found = await self._redis.hgetall(self._key)
        return [ScheduleRecord.model_validate_json(found[name]) for name in sorted(found)]

    @translated
    async def delete(self, name: str) -> bool:
        return bool(await self._redis.hdel(self._key, name))

    @translated
    async def set_suspend(self, name: str, suspend: bool) -> ScheduleRecord | None:
        def change(current: ScheduleRecord | None) -> ScheduleRecord | None:
            if current is None:
                return None
            spec = current.spec.model_copy(update={"suspend": suspend})
            return current.model_copy(update={"spec": spec})

        return await self._update(name, change)

    @translated
    async def write_status(self, record: ScheduleRecord, status: ScheduleStatus) -> bool:
        def change(current: ScheduleRecord | None) -> ScheduleRecord | None:
            if current is None or current.version != record.version:
                return None
            return current.model_copy(update={"status": status})

        return await self._update(record.name, change) is not None

    async def _update(
        self, name: str, change: Callable[[ScheduleRecord | None], ScheduleRecord | None]
    ) -> ScheduleRecord | None:
        """Read, change and write one schedule in a WATCH transaction (re-run on a race);
        `change` returning None writes nothing."""
        result: list[ScheduleRecord | None] = []

        async def write(pipe: Pipeline) -> None:
            raw = await pipe.hget(self._key, name)
            current = ScheduleRecord.model_validate_json(raw) if raw else None
            changed = change(current)
            result[:] = [changed]
            if changed is None:
                return
            written = changed.model_copy(update={"version": str(int(changed.version or 0) + 1)})
            result[:] = [written]
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.hset(self._key, name, written.model_dump_json(by_alias=True))

        await self._redis.transaction(write, self._key)
        return result[0]


class RedisSchedulerLease:
    def __init__(self, client: aioredis.Redis, namespace: str) -> None:
        self._redis, self._key = client, scheduler_lease_key(namespace)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @translated
    async def hold(self, holder: str, seconds: float) -> bool:
        return bool(await self._renew(keys=[self._key], args=[holder, int(seconds * 1000)]))

    @translated
    async def release(self, holder: str) -> None:
        await self._release(keys=[self._key], args=[holder])


class RedisClaims:
    """Who creates a schedule slot's run: the first to claim it within `seconds`."""

    def __init__(self, client: aioredis.Redis, namespace: str, *, seconds: int) -> None:
        self._redis, self._namespace, self._seconds = client, namespace, seconds

    @translated
    async def claim(self, run_id: str) -> bool:
        key = claim_key(self._namespace, run_id)
        return bool(await self._redis.set(key, "1", nx=True, ex=self._seconds))
