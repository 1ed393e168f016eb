"""What the namespace store and the operator's mirror writer share, written once.

Two jobs use Redis: `RedisStore` (redis_store.py) is the store of one namespace, what an
API replica reads and its local backend writes; `RedisMirrorWriter` (redis_mirror.py)
is the operator's copy of the WorkflowRuns of every namespace, written by version. They
write the same run hash through the same script (write_run.lua: a create carries no
version, a mirror write carries the WorkflowRun's resourceVersion) and drop a run the
same way (delete_run.lua), so what both need is here:

- `RedisRuns`, their base: the client (one bounded pool, store/connection.py) and the
  scripts registered on it, the whole-run write and the delete;
- the run's encoding into its hash and back (the field names, in one place);
- `translated`: Redis being unreachable is StoreUnavailableError, whatever the command.

The key names come from keys.py, the scripts from scripts.py (lua/*.lua).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis

from stageflow.engine import RunPhase, RunStatus, WorkflowRequest
from stageflow.models.folding import folded, unfold
from stageflow.models.records import RunEvent, RunOrigin, RunRecord, RunSummary
from stageflow.models.status import format_timestamp, parse_timestamp
from stageflow.store.base import DEFAULT_FINISHED_TTL_SECONDS, StoreUnavailableError, expiry_seconds
from stageflow.store.keys import (
    NAMESPACES,
    events_channel,
    logs_key,
    run_key,
    runs_key,
    tasks_key,
    tombstone_key,
)
from stageflow.store.scripts import RunScripts

TOMBSTONE_SECONDS = 600
ANY_VERSION = "*"  # a delete's version when it has none (the API's): newer than any write
# The hash fields a listing reads (HMGET), in the order `summary_from_row` takes them.
SUMMARY_FIELDS = (
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

_P = ParamSpec("_P")
_R = TypeVar("_R")


def translated(
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


def score(moment: datetime) -> int:
    """A run's place in `runs:{ns}`: its creation time in microseconds."""
    return int(moment.timestamp() * 1_000_000)


def run_fields(status: RunStatus, run_id: str) -> dict[str, str]:
    """The run-level fields of a status, as the hash stores them ('' for unset)."""
    return {
        "phase": status.phase.value,
        "progress": status.progress,
        "startedAt": format_timestamp(status.started_at) if status.started_at else "",
        "finishedAt": format_timestamp(status.finished_at) if status.finished_at else "",
        "message": status.message or "",
        # a big run's alike task entries folded (models/folding.py): its detail stays small
        "detail": folded(status, run_id=run_id).model_dump_json(by_alias=True, exclude_none=True),
    }


def record_from_hash(fields: Mapping[str, str], *, unfolded: bool = True) -> RunRecord:
    """A run as its hash holds it (HGETALL); a big run's status unfolded unless not
    `unfolded` (then as stored: models/folding.py)."""
    return RunRecord(
        run_id=fields["runId"],
        namespace=fields.get("namespace") or None,
        name=fields["name"] or None,
        labels=json.loads(fields["labels"]),
        created_at=datetime.fromisoformat(fields["createdAt"].replace("Z", "+00:00")),
        spec=WorkflowRequest.model_validate_json(fields["spec"]),
        status=_status(fields["detail"], fields["runId"], unfolded=unfolded),
        cancel_requested=fields.get("cancelRequested") == "1",
        submitted_by=fields.get("submittedBy") or None,
        origin=RunOrigin.model_validate_json(fields["origin"]) if fields.get("origin") else None,
    )


def _status(detail: str, run_id: str, *, unfolded: bool) -> RunStatus:
    status = RunStatus.model_validate_json(detail)
    return unfold(status, run_id=run_id) if unfolded else status


def summary_from_row(row: list[str | None]) -> RunSummary:
    """A listing's row: the values of SUMMARY_FIELDS, in that order (HMGET)."""
    values: dict[str, str | None] = dict(zip(SUMMARY_FIELDS, row, strict=True))
    return RunSummary(
        run_id=values["runId"] or "",
        namespace=values["namespace"] or None,
        name=values["name"] or None,
        labels=json.loads(values["labels"] or "{}"),
        created_at=parse_timestamp(values["createdAt"]) or datetime.now(UTC),
        phase=RunPhase(values["phase"] or RunPhase.PENDING),
        progress=values["progress"] or "0/0",
        started_at=parse_timestamp(values["startedAt"]),
        finished_at=parse_timestamp(values["finishedAt"]),
        message=values["message"] or None,
    )


def drop_keys(namespace: str, run_id: str) -> list[str]:
    """KEYS of delete_run.lua and prune_run.lua."""
    return [
        run_key(namespace, run_id),
        tasks_key(namespace, run_id),
        logs_key(namespace, run_id),
        runs_key(namespace),
        tombstone_key(namespace, run_id),
    ]


class RedisRuns:
    """Runs in Redis, written whole or dropped: the base of the namespace store and the
    operator's mirror writer, which differ in whose runs they write and how they read."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        finished_ttl_seconds: int = DEFAULT_FINISHED_TTL_SECONDS,
        scripts: RunScripts | None = None,
    ) -> None:
        self._redis = client
        self._finished_ttl = finished_ttl_seconds
        self._scripts = scripts or RunScripts.on(client)

    def _write_args(
        self,
        record: RunRecord,
        *,
        namespace: str,
        version: str | None,
        event: RunEvent | None,
        unfinished_ttl: int | None = None,
    ) -> tuple[list[str], list[str]]:
        """KEYS and ARGV of write_run.lua for a create (no event: the local backend's, also
        when a retry rewrites the run) or a mirror write (an event: it is published). Both
        replace the task map: a retry may drop forEach instances a create must not keep."""
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
            "origin": record.origin.model_dump_json(exclude_none=True) if record.origin else "",
            "ttl": str(ttl),
            **run_fields(record.status, record.run_id),
        }
        if version is not None:
            fields["version"] = version
        args: list[str] = [
            record.run_id,
            str(score(record.created_at)),
            str(ttl) if record.status.phase.finished else str(unfinished_ttl or 0),
            "1",  # the task map is replaced
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

    async def _write(
        self,
        record: RunRecord,
        *,
        namespace: str,
        version: str | None,
        event: RunEvent | None,
        unfinished_ttl: int | None = None,
    ) -> bool:
        """Write a whole run (write_run.lua); False if its version lost (a no-op). An
        unfinished run written with `unfinished_ttl` expires then unless a later write
        (the mirror's, which keeps it) comes first."""
        keys, args = self._write_args(
            record,
            namespace=namespace,
            version=version,
            event=event,
            unfinished_ttl=unfinished_ttl,
        )
        return bool(await self._scripts.write_run(keys=keys, args=args))

    async def _drop(self, *, namespace: str, run_id: str, version: str) -> bool:
        """Delete a run deleted at `version` (ANY_VERSION: the API's delete) and leave a
        tombstone (delete_run.lua); whether the run was stored."""
        return bool(
            await self._scripts.delete_run(
                keys=drop_keys(namespace, run_id),
                args=[run_id, version, str(TOMBSTONE_SECONDS)],
            )
        )

    async def close(self) -> None:
        await self._redis.aclose()
