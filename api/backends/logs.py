"""Reading an in-process task's log from the store, with the 404s both backends give."""

from __future__ import annotations

from stageflow.api.errors import NoLogsError
from stageflow.store import RunRecord, RunStore


async def stored_log(store: RunStore, record: RunRecord, task_id: str) -> str:
    if task_id not in record.status.tasks:
        raise NoLogsError(f"Task not found: {task_id}")
    text = await store.get_log(record.run_id, task_id)
    if text is None:
        raise NoLogsError(f"No logs yet for task {task_id}")
    return text
