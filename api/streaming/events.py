"""A run's events as (kind, JSON), for the SSE route and the WebSocket alike, and the
answer of `GET /workflow/{id}/tasks/{task}/logs?follow=true`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from stageflow.api.auth import redact_env
from stageflow.api.backends import Backend
from stageflow.api.errors import NoLogsError
from stageflow.api.streaming.logs import follow_task_log
from stageflow.models.folding import summary
from stageflow.models.records import RunRecord


async def run_events(
    backend: Backend, run_id: str, *, shown: bool
) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """(kind, JSON) of each event of a run: a `snapshot` (env redacted unless `shown`; a big
    run summarised as `GET /workflow/{id}` does), then an `update` per change, until it
    ends. The SSE route and the WebSocket send these."""
    async for item in backend.events(run_id):
        if isinstance(item, RunRecord):
            item = item.model_copy(update={"status": summary(item.status, run_id=item.run_id)})
            yield "snapshot", (item if shown else redact_env(item)).to_json_dict()
        else:
            yield "update", item.to_json_dict()


async def followed_log(backend: Backend, run_id: str, task_id: str) -> StreamingResponse:
    """The streaming answer of `logs?follow=true`; an unknown run or task is a 404 first."""
    record = await backend.get(run_id)
    if task_id not in record.status.tasks:
        raise NoLogsError(f"Task not found: {task_id}")
    return StreamingResponse(
        follow_task_log(backend, run_id, task_id),
        media_type="text/plain; charset=utf-8",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
