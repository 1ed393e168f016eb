"""What both backends do the same way: compile a request, stream a run, read a task's log."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from stageflow.api.errors import NoLogsError, TaskNotFoundError
from stageflow.engine import Plan, TaskRegistry, TaskSpec, WorkflowRequest, compile_workflow
from stageflow.engine.approval import NotWaitingError, check_outputs
from stageflow.engine.config import EngineSettings
from stageflow.engine.retry import check_retryable
from stageflow.models.records import RunEvent, RunRecord
from stageflow.models.status import Decision, TaskPhase
from stageflow.store import RunStore


async def compile_off_loop(
    request: WorkflowRequest, *, registry: TaskRegistry, settings: EngineSettings
) -> Plan:
    """Compiling parses every reference and CEL condition of a request (up to the body
    limit): in a worker thread, so a large request never stalls the other clients (a
    3.7 KB `when` takes 100 ms to parse). A request with no condition and a few small
    tasks compiles in tens of microseconds (the seed: 0.06 ms), less than the thread
    hop costs, so it is compiled on the loop."""
    compile_it = functools.partial(
        compile_workflow, request, registry=registry, **settings.limits()
    )
    if _compiles_quickly(request):
        return compile_it()
    return await asyncio.to_thread(compile_it)


async def retry_plan(
    record: RunRecord,
    *,
    from_task: str | None,
    params: dict[str, Any] | None,
    registry: TaskRegistry,
    settings: EngineSettings,
) -> Plan:
    """The plan a retry of `record` runs (its params overridden), once the run is found
    retryable and `from_task` one of its tasks (both backends check the same)."""
    spec = record.spec
    if params:
        spec = spec.model_copy(update={"params": {**spec.params, **params}})
    plan = await compile_off_loop(spec, registry=registry, settings=settings)
    check_retryable(plan, record.status, from_task)
    return plan


def check_decision(record: RunRecord, task_id: str, decision: Decision) -> None:
    """What both backends check before a decision is sent on: the task is an approval
    task of the run, it is Waiting, and the outputs fit its inputs."""
    spec = next((task for task in approval_tasks(record.spec) if task.name == task_id), None)
    if spec is None or spec.approval is None:
        if task_id in record.status.tasks:
            raise NotWaitingError(f"Task {task_id} is not an approval task")
        raise TaskNotFoundError(f"No task {task_id} in run {record.run_id}")
    phase = record.status.tasks[task_id].phase if task_id in record.status.tasks else None
    if phase is not TaskPhase.WAITING:
        now = phase.value if phase is not None else "Pending"
        raise NotWaitingError(f"Task {task_id} is not waiting for approval (it is {now})")
    if decision.approved:
        check_outputs(task_id, spec.approval, decision.outputs)


def approval_tasks(spec: WorkflowRequest) -> list[TaskSpec]:
    entries = [
        *(spec.dag or []),
        *(entry for stage in spec.workflow or [] for entry in stage.tasks),
        *(spec.finally_ or []),
    ]
    return [entry for entry in entries if isinstance(entry, TaskSpec) and entry.approval]


INLINE_TASKS = 32  # at most this many tasks, with no condition or forEach ...
INLINE_PARAM_BUDGET = 2048  # ... and params of at most this many characters and values


def _compiles_quickly(request: WorkflowRequest) -> bool:
    entries: list[str | TaskSpec] = [
        *(request.dag or []),
        *(entry for stage in request.workflow or [] for entry in stage.tasks),
        *(request.finally_ or []),
    ]
    if len(entries) > INLINE_TASKS:
        return False
    budget = _spend(request.params, INLINE_PARAM_BUDGET)
    for entry in entries:
        if isinstance(entry, str):
            continue
        if entry.when is not None or entry.until is not None or entry.for_each is not None:
            return False
        budget = _spend(entry.params, budget)
        if budget < 0:
            return False
    return True


def _spend(value: object, budget: int) -> int:
    """What is left of `budget` after walking `value` (each value 1, each string its
    length); stops as soon as it is spent, so the walk itself stays cheap."""
    stack = [value]
    while stack and budget >= 0:
        item = stack.pop()
        budget -= len(item) if isinstance(item, str) else 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return budget


async def stream_run(
    store: RunStore, run_id: str, snapshot: Callable[[], Awaitable[RunRecord | None]]
) -> AsyncIterator[RunRecord | RunEvent]:
    """The run as it is, then each update until it finishes. Subscribing before reading
    the snapshot means no update can fall between the two."""
    async with store.subscribe(run_id) as updates:
        record = await snapshot()
        if record is None:
            return
        yield record
        if record.status.phase.finished:
            return
        async for event in updates:
            yield event
            if event.phase.finished:
                return


async def stored_log(store: RunStore, record: RunRecord, task_id: str) -> str:
    if task_id not in record.status.tasks:
        raise NoLogsError(f"Task not found: {task_id}")
    text = await store.get_log(record.run_id, task_id)
    if text is None:
        raise NoLogsError(f"No logs yet for task {task_id}")
    return text
