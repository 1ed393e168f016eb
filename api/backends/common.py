"""What both backends do the same way: compile a request, stream a run, read a task's log."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable

from stageflow.api.errors import NoLogsError
from stageflow.engine import Plan, TaskRegistry, WorkflowRequest, compile_workflow
from stageflow.engine.config import EngineSettings
from stageflow.store import RunEvent, RunRecord, RunStore


async def compile_off_loop(
    request: WorkflowRequest, *, registry: TaskRegistry, settings: EngineSettings
) -> Plan:
    """Compiling parses every reference and CEL condition of a request (up to the body
    limit): in a worker thread, so a large request never stalls the other clients."""
    return await asyncio.to_thread(
        functools.partial(compile_workflow, request, registry=registry, **settings.limits())
    )


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
