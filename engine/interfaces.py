"""The two seams between the runner and whoever hosts it.

The runner decides *what* runs *when*; an `Executor` decides *how* one attempt
runs (a coroutine in this process, a Kubernetes Job), and a `StatusSink` decides
*where* status goes (memory, Redis, a WorkflowRun's status subresource). The
engine defines both and knows no implementation outside itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from stageflow.engine.plan import PlannedTask
from stageflow.models.status import RunStatus, TaskStatus


@dataclass
class TaskResult:
    """How one attempt ended. `ok=False` with a message is an ordinary failure."""

    ok: bool
    message: str | None = None
    outputs: dict[str, Any] | None = None
    log: str | None = None


@dataclass
class Attempt:
    """One attempt of one task, handed to the executor.

    `status` is the task's live status entry: an executor may record fields on it
    (a Job's name, say) and call `changed()` so the sink hears of it.
    `resumed` is true when this attempt was already under way before a restart.
    `detach()` tells an executor being cancelled whether to leave the attempt running
    (the host is shutting down and will re-attach) rather than stop it.
    """

    task: PlannedTask
    number: int
    status: TaskStatus
    task_id: str = ""  # the task's id, or a forEach instance's (NAME[i]); default: task.id
    params: dict[str, Any] = field(default_factory=dict)  # rendered: references resolved
    resumed: bool = False
    changed: Callable[[], None] = field(default=lambda: None, repr=False)
    detach: Callable[[], bool] = field(default=lambda: False, repr=False)
    # Publishes what the attempt printed so far, for followers of its log (in-process tasks).
    live_log: Callable[[str], Awaitable[None]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.task_id:
            self.task_id = self.task.id


class TaskExecutor(Protocol):
    """Runs attempts of tasks."""

    name: str

    def can_resume(self, task: PlannedTask, status: TaskStatus) -> bool:
        """Whether an attempt that was running before a restart can be re-attached."""
        ...

    async def execute(self, attempt: Attempt) -> TaskResult:
        """Run one attempt to its end. Cancellation must stop it (and its Job, if any)."""
        ...


class StatusSink(Protocol):
    """Receives the run's status after every transition.

    `changed` names the tasks whose entries changed since the last call; run-level
    fields are always current. `final` marks the run's last status: a sink that
    batches writes must have written it when `publish` returns. A sink must take
    what it needs from `status` before its first `await`: the runner goes on
    changing it.
    """

    async def publish(self, status: RunStatus, changed: frozenset[str], *, final: bool) -> None: ...

    async def written(self) -> None:
        """Return once everything published so far is stored (a task with `delivery:
        atMostOnce` waits for its attempt's start to be stored before its body runs). A
        sink that stores on `publish` has nothing to wait for."""
        ...

    async def record_log(self, task_id: str, text: str) -> None:
        """Keep what an attempt printed (the latest attempt's, bounded) where users read logs."""
        ...


@dataclass(frozen=True)
class CacheEntry:
    """A task's recorded success, as a ResultCache keeps it (engine/cache.py): its outputs
    (and an `until` loop's iterations), and which run and task produced it."""

    outputs: Any
    run_id: str
    task_id: str
    iterations: int | None = None


class ResultCache(Protocol):
    """Recorded results of cached tasks, by key, for one namespace (store/result_cache.py:
    in memory, or in Redis where every replica and the operator see them). An entry
    expires `ttl_seconds` after it was put; a cache that is full evicts as it says."""

    async def get(self, key: str) -> CacheEntry | None: ...

    async def put(self, key: str, entry: CacheEntry, *, ttl_seconds: int) -> None:
        """Record `entry` under `key`, replacing what was there."""
        ...
