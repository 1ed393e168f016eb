"""What both backends do the same way with the store: stream a run, read a task's log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from stageflow.api.errors import NoLogsError
from stageflow.store import RunEvent, RunRecord, RunStore


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
