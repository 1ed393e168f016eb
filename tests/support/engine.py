"""Running a workflow body through the engine, with a sink that records every publish."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from stageflow.engine import (
    Executor,
    InProcessExecutor,
    RunStatus,
    StatusSink,
    TaskRegistry,
    WorkflowRequest,
    WorkflowRunner,
    compile_workflow,
)
from stageflow.engine.admission import RunQueue


class RecordingSink:
    """Keeps a copy of every status it is given, as a store would."""

    def __init__(self) -> None:
        self.published: list[tuple[RunStatus, frozenset[str], bool]] = []
        self.logs: dict[str, str] = {}
        self.barriers = 0  # calls of `written`: one per atMostOnce attempt
        self.at_barrier: list[RunStatus | None] = []

    async def record_log(self, task_id: str, text: str) -> None:
        self.logs[task_id] = text

    async def publish(self, status: RunStatus, changed: frozenset[str], *, final: bool) -> None:
        self.published.append((status.model_copy(deep=True), changed, final))

    async def written(self) -> None:
        """What was stored when a barrier was asked for: the last status published."""
        self.barriers += 1
        self.at_barrier.append(self.published[-1][0] if self.published else None)


RunBody = Callable[..., Awaitable[RunStatus]]


def make_runner(
    body: dict[str, Any],
    tasks: TaskRegistry,
    sink: StatusSink | None = None,
    status: RunStatus | None = None,
    queue: RunQueue | None = None,
) -> WorkflowRunner:
    plan = compile_workflow(WorkflowRequest.model_validate(body), registry=tasks)
    return WorkflowRunner(
        plan,
        executors={Executor.INPROCESS: InProcessExecutor(tasks)},
        sink=sink or RecordingSink(),
        status=status,
        queue=queue,
    )
