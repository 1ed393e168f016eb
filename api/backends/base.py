"""What a backend does for the routes; the routes never know which one serves them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from typing import Any, Protocol

from stageflow.api.backends.catalog import Catalog
from stageflow.engine import RunPhase, WorkflowRequest
from stageflow.models.records import RunEvent, RunOrigin, RunRecord
from stageflow.models.status import Decision
from stageflow.store import Cursor, RunPage


class Backend(Protocol):
    catalog: Catalog  # templates and schedules (api/backends/catalog.py)

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(
        self,
        request: WorkflowRequest,
        *,
        submitted_by: str | None,
        origin: RunOrigin | None = None,
        run_id: str | None = None,
    ) -> RunRecord:
        """Validate and start a run, recording who submitted it (None: unauthenticated) and
        where it came from (a template, a schedule's slot, whose `run_id` it derives); a
        SpecError or InvalidRequestError (400) stores nothing."""
        ...

    async def get(self, run_id: str, *, folded: bool = False) -> RunRecord:
        """Raise RunNotFoundError. With `folded`, a big run's status may come as stored
        (models/folding.py), for a reader that only summarises it."""
        ...

    async def task_phases(self, run_id: str) -> dict[str, str]: ...

    async def list(
        self, *, phase: RunPhase | None, limit: int, cursor: Cursor | None
    ) -> RunPage: ...

    async def retry(
        self,
        run_id: str,
        *,
        from_task: str | None,
        params: dict[str, Any] | None,
        requested_by: str | None,
    ) -> RunRecord:
        """Retry a Failed or Cancelled run in place (engine/retry.py); raise RunNotFoundError,
        NotRetryableError or RunConflictError (409), or SpecError (400: `from` names no task,
        or the params do not fit)."""
        ...

    async def decide(self, run_id: str, task_id: str, decision: Decision) -> RunRecord:
        """A person's answer to approval task `task_id`; raise RunNotFoundError (no such
        run or task), NotWaitingError (409: not waiting, or decided already), or
        ApprovalInputError (400: outputs that do not fit its inputs)."""
        ...

    async def hold(self, run_id: str, *, suspended: bool) -> RunRecord:
        """Suspend (`suspended`) or resume a run; raise RunNotFoundError, or
        RunFinishedError for a finished run."""
        ...

    async def cancel(self, run_id: str, *, force: bool = False) -> RunRecord:
        """Request cancellation (`force`: of the finally tasks too); raise RunNotFoundError,
        or RunFinishedError for a finished run."""
        ...

    async def delete(self, run_id: str) -> None: ...

    async def task_log(self, run_id: str, task_id: str) -> str:
        """A task's output: its pod's log (Job) or what it printed (in-process).

        Raise RunNotFoundError, or NoLogsError for an unknown task or one with no log yet.
        """
        ...

    async def task_logs(self, run_id: str, task_ids: Collection[str]) -> dict[str, str]:
        """The logs there are of these tasks, read together (a task without one, or not in
        the run, is left out): what a stream sweeps, one read for a run of any size.
        Raise RunNotFoundError."""
        ...

    def events(self, run_id: str) -> AsyncIterator[RunRecord | RunEvent]:
        """The run as it is (a big one possibly folded, as `get(folded=True)`), then every
        update until it finishes."""
        ...

    async def readiness(self) -> dict[str, str]:
        """Each dependency's state; raise StoreUnavailable when one cannot serve."""
        ...
