"""The Redis store, shared by every API replica and the operator: the key layout the README
lists under "Several API replicas".

Keys (prefix `stageflow:`; `{ns}` is the run's namespace: the WorkflowRun's for the
operator's mirror, STAGEFLOW_NAMESPACE for the API's local backend; two runs with the
same name in two namespaces never share a key):
- `run:{ns}/{id}` hash: runId, namespace, name, labels, createdAt, phase, progress,
  startedAt, finishedAt, message, spec (JSON), detail (the status as JSON),
  cancelRequested, ttl, and `version` (the WorkflowRun's resourceVersion; mirror only);
- `run:{ns}/{id}:tasks` hash: task id -> phase (the seed's shape: one HGETALL answers /status);
- `runs:{ns}` sorted set: the namespace's run ids scored by creation time in microseconds;
- `namespaces` set: every namespace that has runs here (the operator's resync walks them);
- `mirror:{scope}:synced`: the run id of the Redis server the operator's mirror of
  `scope` (its namespace, or `*`) last resynced against (a restart or flush shows);
- channel `run:{ns}/{id}:events`: every status update, as a RunEvent in JSON;
- channel `control`: cancellation requests for whichever replica runs a run (local backend);
- `run:{ns}/{id}:logs` hash: task id -> the output of its latest in-process attempt (bounded);
- `run:{ns}/{id}:deleted`: a tombstone for ten minutes after a delete; it holds the
  resourceVersion the run was deleted at (`*`: deleted by the API, any version).

Every write is one Lua script, so a check and the write it guards are atomic:
- a mirror write carries the WorkflowRun's resourceVersion and is a no-op (publishing
  nothing) unless it is newer than the `version` stored, and newer than a tombstone's;
  so the mirror never goes backwards, whatever order writes and resyncs arrive in.
  Kubernetes calls resourceVersion opaque, but every apiserver on etcd (and kine) makes
  it etcd's revision, a decimal integer that grows with every write: two decimal versions
  compare as integers (as strings by length then digits, so no precision is lost). A
  version that is not decimal cannot be ordered: it is written only when it differs
  from the one stored (arrival order, the watch stream's), never over a tombstone, and
  never pruned by a resync;
- the local backend's writes carry no version: one runner in one process writes a
  run's status in order, so there is nothing to order against; its runs are never
  pruned by the operator's resync (nothing could prove them gone);
- a status write (local backend) writes nothing if the run was deleted (so a runner
  finishing after a DELETE cannot bring the run back), sets the expiry when the run
  finishes, and publishes the event in the same step;
- a prune (the resync) drops a run only if its stored version is not newer than the
  version of the listing that did not contain it: the list proves it gone.
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
from redis.typing import EncodableT, FieldT

from stageflow.engine import RunPhase, RunStatus, WorkflowRequest
from stageflow.models.records import RunEvent, RunRecord, RunSummary, checked_run_id
from stageflow.models.status import format_timestamp
from stageflow.store.base import (
    DEFAULT_FINISHED_TTL_SECONDS,
    DEFAULT_NAMESPACE,
    Control,
    StoreUnavailableError,
    expiry_seconds,
)
from stageflow.store.connection import RedisConnectionSettings, connect
from stageflow.store.fanout import PubSubFanout
from stageflow.store.pages import Cursor, RunPage

PREFIX = "stageflow:"
NAMESPACES = f"{PREFIX}namespaces"
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
_WRITE_BATCH = 100
TOMBSTONE_SECONDS = 600
ANY_VERSION = "*"

# newer(a, b): true if version a is newer than b, false if not, nil if they cannot be
# ordered (either is not a decimal integer: then only equality means anything).
_NEWER = """
local function newer(a, b)
  if not (string.match(a, '^%d+$') and string.match(b, '^%d+$')) then return nil end
  a = (string.gsub(a, '^0+', ''))
  b = (string.gsub(b, '^0+', ''))
  if #a ~= #b then return #a > #b end
  return a > b
end
"""

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

# KEYS: run hash, tasks hash, runs zset, tombstone, events channel, namespaces set.
# ARGV: run id, score, ttl ("0": keep), replace tasks ("1"/"0"), event JSON or "",
#       version or "" (none: the local backend's), namespace,
#       number of run-field pairs, run pairs..., task pairs...
_WRITE_RUN = (
    _NEWER
    + """
local version = ARGV[6]
local tomb = redis.call('GET', KEYS[4])
if tomb then
  if version == '' or newer(version, tomb) ~= true then return 0 end
  redis.call('DEL', KEYS[4])
end
if version ~= '' then
  local held = redis.call('HGET', KEYS[1], 'version')
  if held then
    local is_newer = newer(version, held)
    if is_newer == false or (is_newer == nil and version == held) then return 0 end
  end
end
local first_task = 9 + 2 * tonumber(ARGV[8])
redis.call('HSET', KEYS[1], unpack(ARGV, 9, first_task - 1))
if ARGV[4] == '1' then redis.call('DEL', KEYS[2]) end
local i = first_task
while i <= #ARGV do
  local last = math.min(i + 999, #ARGV)
  redis.call('HSET', KEYS[2], unpack(ARGV, i, last))
  i = last + 1
end
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('SADD', KEYS[6], ARGV[7])
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
)

# KEYS: run hash, tasks hash, logs hash, runs zset, tombstone.
# ARGV: run id, the version deleted at ("*": any, the API's delete), tombstone seconds.
# A delete older than the run stored (a run re-created under the same name) is a no-op.
_DELETE_RUN = (
    _NEWER
    + """
local mark = ARGV[2]
local held = redis.call('HGET', KEYS[1], 'version')
if held and mark ~= '*' and newer(held, mark) == true then return 0 end
local tomb = redis.call('GET', KEYS[5])
if tomb and (tomb == '*' or newer(tomb, mark) == true) then mark = tomb end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('SET', KEYS[5], mark, 'EX', tonumber(ARGV[3]))
return existed
"""
)

# KEYS: run hash, tasks hash, logs hash, runs zset, tombstone.
# ARGV: run id, the listing's resourceVersion, tombstone seconds.
# Drops the run only if the listing that left it out is proven newer than what is stored.
_PRUNE_RUN = (
    _NEWER
    + """
local held = redis.call('HGET', KEYS[1], 'version')
if not held then
  if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('ZREM', KEYS[4], ARGV[1]) end
  return 0
end
if newer(held, ARGV[2]) ~= false then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('SET', KEYS[5], ARGV[2], 'EX', tonumber(ARGV[3]))
return 1
"""
)

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


def run_key(namespace: str, run_id: str) -> str:
    """Every key below is built from this one, so no key is built from an unchecked ID."""
    return f"{PREFIX}run:{namespace}/{checked_run_id(run_id)}"


def tasks_key(namespace: str, run_id: str) -> str:
    return f"{run_key(namespace, run_id)}:tasks"


def logs_key(namespace: str, run_id: str) -> str:
    return f"{run_key(namespace, run_id)}:logs"


def tombstone_key(namespace: str, run_id: str) -> str:
    """Marks a deleted run for a while, so a late mirror write cannot bring it back."""
    return f"{run_key(namespace, run_id)}:deleted"


def events_channel(namespace: str, run_id: str) -> str:
    return f"{run_key(namespace, run_id)}:events"


def runs_key(namespace: str) -> str:
    """The namespace's runs, by creation time."""
    return f"{PREFIX}runs:{namespace}"


def synced_key(scope: str) -> str:
    """The Redis server the operator's mirror of `scope` (a namespace, or `*`) last resynced."""
    return f"{PREFIX}mirror:{scope}:synced"


def _delete_keys(namespace: str, run_id: str) -> list[str]:
    return [
        run_key(namespace, run_id),
        tasks_key(namespace, run_id),
        logs_key(namespace, run_id),
        runs_key(namespace),
        tombstone_key(namespace, run_id),
    ]


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


def _run_id(info: Mapping[str, Any]) -> str:
    """INFO's run_id; a server (or proxy) that does not say is one server for ever, so
    then only a missing marker (a flush, or a restart empty) shows that data was lost."""
    return str(info.get("run_id", "unknown"))


def _namespace_of(record: RunRecord) -> str:
    if not record.namespace:
        raise ValueError(f"mirrored run {record.run_id} has no namespace")
    return record.namespace


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
    """The store of one namespace (the API's), and the operator's mirror of every namespace.

    The RunStore methods read and write runs of `namespace`; the mirror's methods
    (`mirror`, `mirror_many`, `delete_mirrored`, `prune`, `run_ids`) take the namespace
    from the WorkflowRun they write.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        finished_ttl_seconds: int = DEFAULT_FINISHED_TTL_SECONDS,
        fanout: PubSubFanout | None = None,
    ) -> None:
        self._redis = client
        self._namespace = namespace
        self._finished_ttl = finished_ttl_seconds
        self._update_status = client.register_script(_UPDATE_STATUS)
        self._set_if_exists = client.register_script(_SET_IF_EXISTS)
        self._write_run = client.register_script(_WRITE_RUN)
        self._delete_run = client.register_script(_DELETE_RUN)
        self._prune_run = client.register_script(_PRUNE_RUN)
        self._fanout = fanout or PubSubFanout(client, keep=CONTROL)  # one per process

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

    @_translated
    async def create(self, record: RunRecord) -> None:
        await self._write(record, namespace=self._namespace, version=None, event=None)

    @_translated
    async def mirror(
        self, record: RunRecord, changed: frozenset[str], *, version: str | None
    ) -> bool:
        """Write a WorkflowRun as observed (the operator's mirror): create or replace it, set
        its expiry once finished, and publish the `changed` tasks to subscribers, unless
        what is stored is as new as `version` (its resourceVersion). Returns whether it
        wrote."""
        return await self._write(
            record,
            namespace=_namespace_of(record),
            version=version,
            event=RunEvent.of(record.run_id, record.status, changed),
        )

    @_translated
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
                    await self._write_run(keys=keys, args=args, client=pipe)
                written += [bool(result) for result in await pipe.execute()]
        return written

    async def _write(
        self, record: RunRecord, *, namespace: str, version: str | None, event: RunEvent | None
    ) -> bool:
        keys, args = self._write_args(record, namespace=namespace, version=version, event=event)
        return bool(await self._write_run(keys=keys, args=args))

    def _write_args(
        self, record: RunRecord, *, namespace: str, version: str | None, event: RunEvent | None
    ) -> tuple[list[str], list[str]]:
        """A create (no event: the local backend's) or a mirror write (replaces the tasks)."""
        mirrored = event is not None
        ttl = expiry_seconds(record, self._finished_ttl)
        fields = {
            "runId": record.run_id,
            "namespace": record.namespace or "",
            "name": record.name or "",
            "labels": json.dumps(record.labels),
            "createdAt": format_timestamp(record.created_at),
            "spec": record.spec.model_dump_json(by_alias=True, exclude_none=True),
            "cancelRequested": "1" if record.cancel_requested else "0",
            "submittedBy": record.submitted_by or "",
            "ttl": str(ttl),
            **_run_fields(record.status),
        }
        if version is not None:
            fields["version"] = version
        args: list[str] = [
            record.run_id,
            str(_score(record.created_at)),
            str(ttl) if record.status.phase.finished else "0",
            "1" if mirrored else "0",  # a mirror write replaces the task map
            event.model_dump_json(by_alias=True, exclude_none=True) if event is not None else "",
            version or "",
            namespace,
            str(len(fields)),
        ]
        for pair in (*fields.items(), *record.status.task_phases().items()):
            args += pair
        keys = [
            run_key(namespace, record.run_id),
            tasks_key(namespace, record.run_id),
            runs_key(namespace),
            tombstone_key(namespace, record.run_id),
            events_channel(namespace, record.run_id),
            NAMESPACES,
        ]
        return keys, args

    @_translated
    async def delete_mirrored(self, *, namespace: str, run_id: str, version: str | None) -> bool:
        """Drop a run whose WorkflowRun was deleted at `version` (None: at any version)."""
        return bool(
            await self._delete_run(
                keys=_delete_keys(namespace, run_id),
                args=[run_id, version or ANY_VERSION, str(TOMBSTONE_SECONDS)],
            )
        )

    @_translated
    async def prune(self, *, namespace: str, run_id: str, listed_at: str) -> bool:
        """Drop a run a listing at resourceVersion `listed_at` did not contain, if that
        proves it gone: what is stored is no newer than the listing."""
        return bool(
            await self._prune_run(
                keys=_delete_keys(namespace, run_id),
                args=[run_id, listed_at, str(TOMBSTONE_SECONDS)],
            )
        )

    @_translated
    async def run_ids(self, namespaces: Iterable[str] | None = None) -> set[tuple[str, str]]:
        """(namespace, run id) of every run listed here, in `namespaces` (None: all)."""
        if namespaces is None:
            namespaces = cast(set[str], await self._redis.smembers(NAMESPACES))
        found: set[tuple[str, str]] = set()
        for namespace in namespaces:
            ids = cast(list[str], await self._redis.zrange(runs_key(namespace), 0, -1))
            found.update((namespace, run_id) for run_id in ids)
        return found

    @_translated
    async def server_id(self) -> str:
        """This Redis server's run id: it changes whenever the server restarts."""
        return _run_id(await self._redis.info("server"))

    @_translated
    async def sync_state(self, scope: str) -> tuple[str, str | None]:
        """(this server's run id, the one the mirror of `scope` last resynced against).
        They differ after a restart (the data may be empty or an old snapshot), and the
        second is None after a flush: either way the mirror must resync."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.info("server")
            pipe.get(synced_key(scope))
            info, synced = await pipe.execute()
        return _run_id(info), synced

    @_translated
    async def mark_synced(self, scope: str, server_id: str) -> None:
        await self._redis.set(synced_key(scope), server_id)

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
        namespace = self._namespace
        written = await self._update_status(
            keys=[
                run_key(namespace, run_id),
                tasks_key(namespace, run_id),
                events_channel(namespace, run_id),
            ],
            args=args,
        )
        return bool(written)

    @_translated
    async def get(self, run_id: str) -> RunRecord | None:
        fields = cast(
            Mapping[str, str], await self._redis.hgetall(run_key(self._namespace, run_id))
        )
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
            submitted_by=fields.get("submittedBy") or None,
        )

    @_translated
    async def task_phases(self, run_id: str) -> dict[str, str] | None:
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(run_key(self._namespace, run_id))
            pipe.hgetall(tasks_key(self._namespace, run_id))
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
        namespace = namespace or self._namespace
        runs = runs_key(namespace)
        newest: str | int = "+inf" if cursor is None else _score(cursor.created_at)
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
                    pipe.hmget(run_key(namespace, run_id), list(_SUMMARY_FIELDS))
                rows: list[list[str | None]] = await pipe.execute()
            gone = [run_id for run_id, row in zip(ids, rows, strict=True) if row[0] is None]
            if gone:
                await self._redis.zrem(runs, *gone)
                offset -= len(gone)
            for row in rows:
                if row[0] is None:
                    continue
                summary = _summary(row)
                if cursor is not None and not cursor.is_after(summary):
                    continue
                if phase is None or summary.phase is phase:
                    found.append(summary)
        page = found[:limit]
        next_cursor = None
        if len(found) > limit:
            next_cursor = Cursor(created_at=page[-1].created_at, run_id=page[-1].run_id).encode()
        return RunPage(items=page, next_cursor=next_cursor)

    @_translated
    async def mark_cancel_requested(self, run_id: str) -> bool:
        return bool(
            await self._set_if_exists(
                keys=[run_key(self._namespace, run_id)], args=["cancelRequested", "1"]
            )
        )

    @_translated
    async def save_logs(self, run_id: str, logs: Mapping[str, str]) -> None:
        key = logs_key(self._namespace, run_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            fields: dict[FieldT, EncodableT] = {task: text for task, text in logs.items()}
            pipe.hset(key, mapping=fields)
            pipe.expire(key, self._finished_ttl)
            await pipe.execute()

    @_translated
    async def get_log(self, run_id: str, task_id: str) -> str | None:
        text = await self._redis.hget(logs_key(self._namespace, run_id), task_id)
        return None if text is None else str(text)

    @_translated
    async def delete(self, run_id: str) -> bool:
        return bool(
            await self._delete_run(
                keys=_delete_keys(self._namespace, run_id),
                args=[run_id, ANY_VERSION, str(TOMBSTONE_SECONDS)],
            )
        )

    @asynccontextmanager
    async def subscribe(self, run_id: str) -> AsyncIterator[AsyncIterator[RunEvent]]:
        async with self._listen(events_channel(self._namespace, run_id)) as messages:
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
