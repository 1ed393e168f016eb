"""The Redis store: the key layout of design §7, shared by every API replica and the operator.

Keys (prefix `stageflow:`):
- `run:{id}` hash: runId, name, labels, createdAt, phase, progress, startedAt, finishedAt,
  message, spec (JSON), detail (the status as JSON), cancelRequested, ttl;
- `run:{id}:tasks` hash: task id -> phase (the seed's shape: one HGETALL answers /status);
- `runs` sorted set: run ids scored by creation time in microseconds, for listing;
- channel `run:{id}:events`: every status update, as a RunEvent in JSON;
- channel `control`: cancellation requests for whichever replica runs a run (local backend);
- `run:{id}:logs` hash: task id -> the output of its latest in-process attempt (bounded);
- `run:{id}:deleted`: a tombstone for ten minutes after a delete.

A status write is one Lua script: it writes nothing if the run was deleted (so a
runner finishing after a DELETE cannot bring the run back), sets the expiry when
the run finishes, and publishes the event in the same step.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis

from stageflow.engine import RunPhase, RunStatus, WorkflowRequest
from stageflow.engine.status import format_timestamp
from stageflow.store.base import (
    DEFAULT_FINISHED_TTL_SECONDS,
    Control,
    StoreUnavailableError,
    expiry_seconds,
)
from stageflow.store.fanout import PubSubFanout
from stageflow.store.records import (
    Cursor,
    RunEvent,
    RunPage,
    RunRecord,
    RunSummary,
    checked_run_id,
)

PREFIX = "stageflow:"
RUNS = f"{PREFIX}runs"
CONTROL = f"{PREFIX}control"
_SUMMARY_FIELDS = (
    "runId",
    "namespace",
    "name",
    "labels",
    "createdAt",
    "phase",
    "progress",
    "startedAt",
    "finishedAt",
    "message",
)
_SCAN_BATCH = 200
TOMBSTONE_SECONDS = 600

# KEYS: run hash, tasks hash, events channel.
# ARGV: final ("1"/"0"), event JSON, number of run-field pairs, run pairs..., task pairs...
_UPDATE_STATUS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local pairs_in_run = tonumber(ARGV[3])
local first_task = 4 + 2 * pairs_in_run
redis.call('HSET', KEYS[1], unpack(ARGV, 4, first_task - 1))
local i = first_task
while i <= #ARGV do
  local last = math.min(i + 999, #ARGV)
  redis.call('HSET', KEYS[2], unpack(ARGV, i, last))
  i = last + 1
end
if ARGV[1] == '1' then
  local ttl = tonumber(redis.call('HGET', KEYS[1], 'ttl'))
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
end
redis.call('PUBLISH', KEYS[3], ARGV[2])
return 1
"""

# KEYS: run hash, tasks hash, runs zset, tombstone, events channel.
# ARGV: run id, score, ttl ("0": keep), replace tasks ("1"/"0"), event JSON or "",
#       number of run-field pairs, run pairs..., task pairs...
_WRITE_RUN = """
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local first_task = 7 + 2 * tonumber(ARGV[6])
redis.call('HSET', KEYS[1], unpack(ARGV, 7, first_task - 1))
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
local i = first_task
while i <= #ARGV do
  local last = math.min(i + 999, #ARGV)
  redis.call('HSET', KEYS[2], unpack(ARGV, i, last))
  i = last + 1
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('EXPIRE', KEYS[2], ttl)
else
  redis.call('PERSIST', KEYS[1])
  redis.call('PERSIST', KEYS[2])
end
if ARGV[5] ~= '' then redis.call('PUBLISH', KEYS[5], ARGV[5]) end
return 1
"""

_SET_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _translated(
    method: Callable[_P, Coroutine[Any, Any, _R]],
) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """Redis being unreachable is StoreUnavailableError to callers, whatever the command."""

    @functools.wraps(method)
    async def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except (aioredis.ConnectionError, aioredis.TimeoutError, OSError) as error:
            raise StoreUnavailableError(f"Redis: {error}") from error

    return call


def run_key(run_id: str) -> str:
    """Every key below is built from this one, so no key is built from an unchecked ID."""
    return f"{PREFIX}run:{checked_run_id(run_id)}"


def tasks_key(run_id: str) -> str:
    return f"{run_key(run_id)}:tasks"


def logs_key(run_id: str) -> str:
    return f"{run_key(run_id)}:logs"


def tombstone_key(run_id: str) -> str:
    """Marks a deleted run for a while, so a late mirror write cannot bring it back."""
    return f"{run_key(run_id)}:deleted"


def events_channel(run_id: str) -> str:
    return f"{run_key(run_id)}:events"


def _score(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _parse_time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _run_fields(status: RunStatus) -> dict[str, str]:
    """The run-level fields of a status, as the hash stores them ('' for unset)."""
    return {
        "phase": status.phase.value,
        "progress": status.progress,
        "startedAt": format_timestamp(status.started_at) if status.started_at else "",
        "finishedAt": format_timestamp(status.finished_at) if status.finished_at else "",
        "message": status.message or "",
        "detail": status.model_dump_json(by_alias=True, exclude_none=True),
    }


def _summary(row: list[str | None]) -> RunSummary:
    values: dict[str, str | None] = dict(zip(_SUMMARY_FIELDS, row, strict=True))
    return RunSummary(
        run_id=values["runId"] or "",
        namespace=values["namespace"] or None,
        name=values["name"] or None,
        labels=json.loads(values["labels"] or "{}"),
        created_at=_parse_time(values["createdAt"]) or datetime.now(UTC),
        phase=RunPhase(values["phase"] or RunPhase.PENDING),
        progress=values["progress"] or "0/0",
        started_at=_parse_time(values["startedAt"]),
        finished_at=_parse_time(values["finishedAt"]),
        message=values["message"] or None,
    )


class RedisStore:
    def __init__(
        self, client: aioredis.Redis, *, finished_ttl_seconds: int = DEFAULT_FINISHED_TTL_SECONDS
    ) -> None:
        self._redis = client
        self._finished_ttl = finished_ttl_seconds
        self._update_status = client.register_script(_UPDATE_STATUS)
        self._set_if_exists = client.register_script(_SET_IF_EXISTS)
        self._write_run = client.register_script(_WRITE_RUN)
        self._fanout = PubSubFanout(client, keep=CONTROL)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStore:
        client = aioredis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        return cls(client, **options)

    @_translated
    async def create(self, record: RunRecord) -> None:
        await self._write(record, replace_tasks=False, event=None)

    @_translated
    async def mirror(self, record: RunRecord, changed: frozenset[str]) -> None:
        """Write a run as observed elsewhere (the operator's mirror): create or replace it,
        set its expiry once finished, and publish the `changed` tasks to subscribers."""
        event = RunEvent.of(record.run_id, record.status, changed)
        await self._write(record, replace_tasks=True, event=event)

    async def _write(
        self, record: RunRecord, *, replace_tasks: bool, event: RunEvent | None
    ) -> None:
        ttl = expiry_seconds(record, self._finished_ttl)
        fields = {
            "runId": record.run_id,
            "namespace": record.namespace or "",
            "name": record.name or "",
            "labels": json.dumps(record.labels),
            "createdAt": format_timestamp(record.created_at),
            "spec": record.spec.model_dump_json(by_alias=True, exclude_none=True),
            "cancelRequested": "1" if record.cancel_requested else "0",
            "ttl": str(ttl),
            **_run_fields(record.status),
        }
        args: list[str] = [
            record.run_id,
            str(_score(record.created_at)),
            str(ttl) if record.status.phase.finished else "0",
            "1" if replace_tasks else "0",
            event.model_dump_json(by_alias=True, exclude_none=True) if event is not None else "",
            str(len(fields)),
        ]
        for pair in (*fields.items(), *record.status.task_phases().items()):
            args += pair
        keys = [
            run_key(record.run_id),
            tasks_key(record.run_id),
            RUNS,
            tombstone_key(record.run_id),
            events_channel(record.run_id),
        ]
        await self._write_run(keys=keys, args=args)

    @_translated
    async def run_ids(self) -> set[str]:
        """Every run listed in the store (for the mirror's resync)."""
        return set(cast(list[str], await self._redis.zrange(RUNS, 0, -1)))

    @_translated
    async def update_status(self, run_id: str, status: RunStatus, changed: frozenset[str]) -> bool:
        run = _run_fields(status)
        event = RunEvent.of(run_id, status, changed).model_dump_json(
            by_alias=True, exclude_none=True
        )
        args: list[str] = ["1" if status.phase.finished else "0", event, str(len(run))]
        for field, value in run.items():
            args += (field, value)
        for task_id in changed:
            if task_id in status.tasks:
                args += (task_id, status.tasks[task_id].phase.value)
        written = await self._update_status(
            keys=[run_key(run_id), tasks_key(run_id), events_channel(run_id)], args=args
        )
        return bool(written)

    @_translated
    async def get(self, run_id: str) -> RunRecord | None:
        fields = cast(Mapping[str, str], await self._redis.hgetall(run_key(run_id)))
        if not fields:
            return None
        return RunRecord(
            run_id=fields["runId"],
            namespace=fields.get("namespace") or None,
            name=fields["name"] or None,
            labels=json.loads(fields["labels"]),
            created_at=datetime.fromisoformat(fields["createdAt"].replace("Z", "+00:00")),
            spec=WorkflowRequest.model_validate_json(fields["spec"]),
            status=RunStatus.model_validate_json(fields["detail"]),
            cancel_requested=fields.get("cancelRequested") == "1",
        )

    @_translated
    async def task_phases(self, run_id: str) -> dict[str, str] | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(run_key(run_id))
            pipe.hgetall(tasks_key(run_id))
            exists, phases = await pipe.execute()
        return dict(phases) if exists else None

    @_translated
    async def list(
        self,
        *,
        phase: RunPhase | None,
        limit: int,
        cursor: Cursor | None,
        namespace: str | None = None,
    ) -> RunPage:
        newest: str | int = "+inf" if cursor is None else _score(cursor.created_at)
        found: list[RunSummary] = []
        offset = 0
        while len(found) <= limit:
            ids = cast(
                list[str],
                await self._redis.zrevrangebyscore(
                    RUNS, newest, "-inf", start=offset, num=_SCAN_BATCH
                ),
            )
            if not ids:
                break
            offset += len(ids)
            async with self._redis.pipeline(transaction=False) as pipe:
                for run_id in ids:
                    pipe.hmget(run_key(run_id), list(_SUMMARY_FIELDS))
                rows: list[list[str | None]] = await pipe.execute()
            gone = [run_id for run_id, row in zip(ids, rows, strict=True) if row[0] is None]
            if gone:
                await self._redis.zrem(RUNS, *gone)
                offset -= len(gone)
            for row in rows:
                if row[0] is None:
                    continue
                summary = _summary(row)
                if cursor is not None and not cursor.is_after(summary):
                    continue
                if (phase is None or summary.phase is phase) and (
                    namespace is None or summary.namespace == namespace
                ):
                    found.append(summary)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            next_cursor = Cursor(created_at=page[-1].created_at, run_id=page[-1].run_id).encode()
        return RunPage(items=page, next_cursor=next_cursor)

    @_translated
    async def mark_cancel_requested(self, run_id: str) -> bool:
        return bool(
            await self._set_if_exists(keys=[run_key(run_id)], args=["cancelRequested", "1"])
        )

    @_translated
    async def save_log(self, run_id: str, task_id: str, text: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(logs_key(run_id), task_id, text)
            pipe.expire(logs_key(run_id), self._finished_ttl)
            await pipe.execute()

    @_translated
    async def get_log(self, run_id: str, task_id: str) -> str | None:
        text = await self._redis.hget(logs_key(run_id), task_id)
        return None if text is None else str(text)

    @_translated
    async def delete(self, run_id: str) -> bool:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(run_key(run_id), tasks_key(run_id), logs_key(run_id))
            pipe.zrem(RUNS, run_id)
            pipe.set(tombstone_key(run_id), "1", ex=TOMBSTONE_SECONDS)
            deleted, _, _ = await pipe.execute()
        return bool(deleted)

    @asynccontextmanager
    async def subscribe(self, run_id: str) -> AsyncIterator[AsyncIterator[RunEvent]]:
        async with self._listen(events_channel(run_id)) as messages:
            yield (RunEvent.model_validate_json(data) async for data in messages)

    @_translated
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

    @_translated
    async def ping(self) -> None:
        await self._redis.ping()

    async def close(self) -> None:
        await self._fanout.close()
        await self._redis.aclose()
