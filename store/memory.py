"""The in-memory store: one process, no dependencies; what `stageflow api` uses by default."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import asynccontextmanager
from typing import TypeVar

from stageflow.engine import RunPhase, RunStatus
from stageflow.engine.admission import MemoryAdmission
from stageflow.models.records import RunEvent, RunRecord, checked_run_id
from stageflow.store.base import (
    DEFAULT_FINISHED_TTL_SECONDS,
    RETRY_CLAIM_SECONDS,
    Control,
    expiry_seconds,
)
from stageflow.store.catalog import (
    MemoryClaims,
    MemorySchedules,
    MemoryTemplates,
    OwnLease,
    SchedulerLease,
)
from stageflow.store.pages import Cursor, RunPage, paginate
from stageflow.store.result_cache import MemoryResultCache

_QUEUE_SIZE = 1000
_T = TypeVar("_T")


class MemoryStore:
    def __init__(self, *, finished_ttl_seconds: int = DEFAULT_FINISHED_TTL_SECONDS) -> None:
        self._finished_ttl = finished_ttl_seconds
        self._records: dict[str, RunRecord] = {}
        self._expires: dict[str, float] = {}
        self._subscribers: dict[str, set[asyncio.Queue[RunEvent]]] = defaultdict(set)
        self._controllers: set[asyncio.Queue[Control]] = set()
        self._logs: dict[str, dict[str, str]] = defaultdict(dict)
        self._claims: dict[tuple[str, str], float] = {}
        self._templates: MemoryTemplates | None = None
        self._schedules = MemorySchedules()
        self._slot_claims = MemoryClaims()
        self._results: MemoryResultCache | None = None
        self._admission: MemoryAdmission | None = None

    def templates(self, *, keep: int) -> MemoryTemplates:
        if self._templates is None:
            self._templates = MemoryTemplates(keep=keep)
        return self._templates

    def schedules(self) -> MemorySchedules:
        return self._schedules

    def scheduler_lease(self) -> SchedulerLease:
        return OwnLease()

    def claims(self) -> MemoryClaims:
        return self._slot_claims

    def admission(self, *, lease_seconds: float) -> MemoryAdmission:
        if self._admission is None:
            self._admission = MemoryAdmission()
        return self._admission

    def result_cache(self, *, max_entries: int, max_bytes: int) -> MemoryResultCache:
        if self._results is None:
            self._results = MemoryResultCache(max_entries=max_entries, max_bytes=max_bytes)
        return self._results

    async def create(self, record: RunRecord) -> None:
        self._records[checked_run_id(record.run_id)] = record.model_copy(deep=True)

    async def update_status(self, run_id: str, status: RunStatus, changed: frozenset[str]) -> bool:
        record = self._live(run_id)
        if record is None:
            return False
        record.status = status.model_copy(deep=True)
        if status.phase.finished:
            self._expires[run_id] = time.monotonic() + expiry_seconds(record, self._finished_ttl)
        event = RunEvent.of(run_id, record.status, changed)
        for queue in self._subscribers.get(run_id, ()):
            if not queue.full():
                queue.put_nowait(event)
        return True

    async def get(self, run_id: str, *, folded: bool = False) -> RunRecord | None:
        record = self._live(run_id)
        return record.model_copy(deep=True) if record is not None else None

    async def task_phases(self, run_id: str) -> dict[str, str] | None:
        record = self._live(run_id)
        return record.status.task_phases() if record is not None else None

    async def list(
        self,
        *,
        phase: RunPhase | None,
        limit: int,
        cursor: Cursor | None,
        namespace: str | None = None,
    ) -> RunPage:
        for run_id in list(self._records):
            self._live(run_id)
        summaries = (record.summary() for record in self._records.values())
        return paginate(summaries, phase=phase, limit=limit, cursor=cursor, namespace=namespace)

    async def mark_cancel_requested(self, run_id: str) -> bool:
        record = self._live(run_id)
        if record is None:
            return False
        record.cancel_requested = True
        return True

    async def claim_retry(self, run_id: str, after: str) -> bool:
        now = time.monotonic()
        key = (run_id, after)
        if self._claims.get(key, 0.0) > now:
            return False
        self._claims[key] = now + RETRY_CLAIM_SECONDS
        return True

    async def save_logs(self, run_id: str, logs: Mapping[str, str]) -> None:
        if self._live(run_id) is not None:
            self._logs[run_id].update(logs)

    async def get_log(self, run_id: str, task_id: str) -> str | None:
        if self._live(run_id) is None:
            return None
        return self._logs.get(run_id, {}).get(task_id)

    async def get_logs(self, run_id: str, task_ids: Collection[str]) -> dict[str, str]:
        if self._live(run_id) is None:
            return {}
        kept = self._logs.get(run_id, {})
        return {task_id: kept[task_id] for task_id in task_ids if task_id in kept}

    async def delete(self, run_id: str) -> bool:
        checked_run_id(run_id)
        self._expires.pop(run_id, None)
        self._logs.pop(run_id, None)
        return self._records.pop(run_id, None) is not None

    @asynccontextmanager
    async def subscribe(self, run_id: str) -> AsyncIterator[AsyncIterator[RunEvent]]:
        queue: asyncio.Queue[RunEvent] = asyncio.Queue(_QUEUE_SIZE)
        self._subscribers[checked_run_id(run_id)].add(queue)
        try:
            yield _drain(queue)
        finally:
            self._subscribers[run_id].discard(queue)
            if not self._subscribers[run_id]:
                del self._subscribers[run_id]

    async def send_control(self, message: Control) -> None:
        for queue in self._controllers:
            queue.put_nowait(message)

    @asynccontextmanager
    async def control(self) -> AsyncIterator[AsyncIterator[Control]]:
        queue: asyncio.Queue[Control] = asyncio.Queue()
        self._controllers.add(queue)
        try:
            yield _drain(queue)
        finally:
            self._controllers.discard(queue)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _live(self, run_id: str) -> RunRecord | None:
        """The record, unless its finished-run TTL has passed (then it is dropped)."""
        checked_run_id(run_id)
        expires = self._expires.get(run_id)
        if expires is not None and expires <= time.monotonic():
            self._records.pop(run_id, None)
            self._logs.pop(run_id, None)
            del self._expires[run_id]
        return self._records.get(run_id)


async def _drain(queue: asyncio.Queue[_T]) -> AsyncIterator[_T]:
    while True:
        yield await queue.get()
