"""Workflow runs: submit, read, list, cancel, delete, stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response, status
from fastapi.responses import PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from stageflow.api.deps import BackendDep
from stageflow.api.errors import InvalidRequestError
from stageflow.api.metrics import RUNS_SUBMITTED
from stageflow.api.schemas import RunList, Submitted
from stageflow.engine import RunPhase, TaskPhase, WorkflowRequest
from stageflow.store import Cursor, RunRecord

router = APIRouter(tags=["workflows"])

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"description": "Workflow not found"}
}


async def existing_run(run_id: str, backend: BackendDep) -> RunRecord:
    """Resolves before a response starts, so an unknown id is a 404 even for a stream."""
    return await backend.get(run_id)


RunDep = Annotated[RunRecord, Depends(existing_run)]


@router.post(
    "/workflow",
    status_code=status.HTTP_202_ACCEPTED,
    responses={status.HTTP_400_BAD_REQUEST: {"description": "The workflow cannot run"}},
)
async def submit_workflow(
    body: WorkflowRequest, backend: BackendDep, response: Response
) -> Submitted:
    """Submit a workflow; it starts at once. Poll `/workflow/{run_id}/status` or stream events."""
    record = await backend.submit(body)
    RUNS_SUBMITTED.inc()
    response.headers["Location"] = f"/workflow/{record.run_id}"
    return Submitted(run_id=record.run_id, status=record.status.phase)


@router.get("/workflow/{run_id}/status", responses=NOT_FOUND)
async def workflow_status(run_id: str, backend: BackendDep) -> dict[str, TaskPhase]:
    """Each task's phase, by task id."""
    return {
        task_id: TaskPhase(phase) for task_id, phase in (await backend.task_phases(run_id)).items()
    }


@router.get("/workflow/{run_id}", responses=NOT_FOUND, response_model_exclude_none=True)
async def get_workflow(run: RunDep) -> RunRecord:
    """The whole run: its normalised spec and its status with every task's detail."""
    return run


@router.get("/workflows", response_model_exclude_none=True)
async def list_workflows(
    backend: BackendDep,
    phase: Annotated[RunPhase | None, Query(description="Only runs in this phase.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> RunList:
    """Runs, newest first."""
    try:
        position = Cursor.decode(cursor) if cursor is not None else None
    except ValueError:
        raise InvalidRequestError(f"Invalid cursor: {cursor}") from None
    page = await backend.list(phase=phase, limit=limit, cursor=position)
    return RunList(items=page.items, next_cursor=page.next_cursor)


@router.post(
    "/workflow/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**NOT_FOUND, status.HTTP_409_CONFLICT: {"description": "Already finished"}},
)
async def cancel_workflow(run_id: str, backend: BackendDep) -> Submitted:
    """Cancel a run: running tasks are cancelled, the rest become Cancelled."""
    record = await backend.cancel(run_id)
    return Submitted(run_id=record.run_id, status=record.status.phase)


@router.delete("/workflow/{run_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_workflow(run_id: str, backend: BackendDep) -> None:
    """Delete a run; one still running is cancelled first."""
    await backend.delete(run_id)


@router.get(
    "/workflow/{run_id}/tasks/{task_id}/logs",
    response_class=PlainTextResponse,
    responses={status.HTTP_404_NOT_FOUND: {"description": "No such run or task, or no log yet"}},
)
async def task_logs(run_id: str, task_id: str, backend: BackendDep) -> str:
    """A task's output: its pod's log for a Job task, what it printed for an in-process one
    (its latest attempt, the last 64 KiB)."""
    return await backend.task_log(run_id, task_id)


@router.get("/workflow/{run_id}/events", response_class=EventSourceResponse, responses=NOT_FOUND)
async def workflow_events(run: RunDep, backend: BackendDep) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: a `snapshot` of the run, then an `update` per change, until it ends."""
    async for item in backend.events(run.run_id):
        kind = "snapshot" if isinstance(item, RunRecord) else "update"
        yield ServerSentEvent(event=kind, raw_data=json.dumps(item.to_json_dict()))
