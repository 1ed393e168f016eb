"""The store's contract: what the API's backends and the operator's mirror need of it.

Two implementations keep the same contract, checked by one test suite: memory
(one process, for development and tests) and Redis (shared by any number of API
replicas, and the read mirror of the Kubernetes backend).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Literal, Protocol

from pydantic import BaseModel

from stageflow.engine import RunPhase, RunStatus
from stageflow.engine.admission import Admission
from stageflow.engine.interfaces import ResultCache
from stageflow.models.records import RunEvent, RunRecord
from stageflow.models.status import Decision
from stageflow.store.catalog import Claims, ScheduleRepo, SchedulerLease, TemplateRepo
from stageflow.store.pages import Cursor, RunPage

DEFAULT_FINISHED_TTL_SECONDS = 7 * 24 * 3600
RETRY_CLAIM_SECONDS = 60  # long enough for one retry request to write the run
DEFAULT_NAMESPACE = "default"  # the API's STAGEFLOW_NAMESPACE default: its runs' key space


class StoreUnavailableError(Exception):
    """The store cannot answer now (Redis down); callers may fall back or answer 503."""


class Control(BaseModel):
    """A request to whichever process runs `run_id` (the local backend's replicas)."""

    action: Literal["cancel", "suspend", "resume", "decide"]
    run_id: str
    force: bool = False  # the finally tasks too
    task: str | None = None  # decide: the approval task
    decision: Decision | None = None


class RunStore(Protocol):
    async def create(self, record: RunRecord) -> None:
        """Store a new run. Finished runs expire after the store's TTL, or the run's own."""
        ...

    async def update_status(self, run_id: str, status: RunStatus, changed: frozenset[str]) -> bool:
        """Write `status` (the `changed` task entries and every run field) and publish it.

        Returns False, writing nothing, when the run is no longer stored (deleted).
        """
        ...

    async def get(self, run_id: str, *, folded: bool = False) -> RunRecord | None:
        """The run; with `folded`, a big run's status may come as stored (models/folding.py)
        rather than unfolded, for a reader that only summarises it."""
        ...

    async def task_phases(self, run_id: str) -> dict[str, str] | None: ...

    async def list(
        self,
        *,
        phase: RunPhase | None,
        limit: int,
        cursor: Cursor | None,
        namespace: str | None = None,
    ) -> RunPage:
        """Runs newest first, optionally of one phase (and one namespace), `limit` at a time."""
        ...

    async def mark_cancel_requested(self, run_id: str) -> bool: ...

    async def claim_retry(self, run_id: str, after: str) -> bool:
        """Whether this caller is the one to make the retry that follows retry `after` (its
        id, or `first`), held for a minute: of two retries sent at once, one gets True."""
        ...

    async def save_logs(self, run_id: str, logs: Mapping[str, str]) -> None:
        """Keep tasks' latest output, task ID -> text (kept as long as the run; deleted with
        it). Several tasks at once: the operator writes what a status flush gathered."""
        ...

    async def get_log(self, run_id: str, task_id: str) -> str | None: ...

    async def get_logs(self, run_id: str, task_ids: Collection[str]) -> dict[str, str]:
        """The logs kept of these tasks, in one read (a task without one is left out)."""
        ...

    async def delete(self, run_id: str) -> bool: ...

    def subscribe(self, run_id: str) -> AbstractAsyncContextManager[AsyncIterator[RunEvent]]:
        """Status updates of one run from now on; enter it before reading a snapshot."""
        ...

    async def send_control(self, message: Control) -> None: ...

    def control(self) -> AbstractAsyncContextManager[AsyncIterator[Control]]: ...

    async def ping(self) -> None:
        """Raise if the store cannot answer."""
        ...

    def templates(self, *, keep: int) -> TemplateRepo:
        """The namespace's templates, keeping the last `keep` revisions (catalog.py)."""
        ...

    def schedules(self) -> ScheduleRepo: ...

    def scheduler_lease(self) -> SchedulerLease: ...

    def claims(self) -> Claims: ...

    def admission(self, *, lease_seconds: float) -> Admission:
        """Who holds which concurrency keys (engine/admission.py): in this process's memory,
        or in Redis shared by every replica (leases of `lease_seconds`)."""
        ...

    def result_cache(self, *, max_entries: int, max_bytes: int) -> ResultCache:
        """Cached tasks' results (store/result_cache.py): in this process's memory (bounded
        by entries and bytes), or in Redis shared by every replica (bounded by entries)."""
        ...

    async def close(self) -> None: ...


def expiry_seconds(record: RunRecord, default: int) -> int:
    """How long a finished run stays: the run's `ttlSecondsAfterFinished`, capped by the store's."""
    own = record.spec.ttl_seconds_after_finished
    return default if own is None else min(own, default)
