"""Workflow runs: submit, read, list, cancel, delete, stream.

Each route names the verb on `workflowruns` its caller needs (api/auth): reading a
run, its status, events and logs is `get`; listing `list`; submitting `create`;
cancelling `patch`; deleting `delete`. The check comes before anything else, so a
caller without it learns nothing, not even whether a run exists.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response, status
from fastapi.responses import PlainTextResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import Discriminator, Tag

from stageflow.api.auth import (
    ANONYMOUS,
    MayApprove,
    MayCreate,
    MayDelete,
    MayGet,
    MayList,
    MayPatch,
    Principal,
    ShowsEnv,
    redact_env,
)
from stageflow.api.backends.base import Backend
from stageflow.api.deps import BackendDep, RunId
from stageflow.api.errors import InvalidRequestError
from stageflow.api.guards import GuardedRoute
from stageflow.api.metrics import RUNS_SUBMITTED
from stageflow.api.streaming.events import followed_log, run_events
from stageflow.api.streaming.slots import stream_slot
from stageflow.engine import RunPhase, TaskPhase, WorkflowRequest
from stageflow.models.api import (
    CancelRequest,
    DecisionRequest,
    ErrorBody,
    RetryRequest,
    RunList,
    Submitted,
)
from stageflow.models.folding import selected, summary
from stageflow.models.records import RunRecord
from stageflow.models.status import Decision, utcnow
from stageflow.models.template import TemplateSubmission
from stageflow.store import Cursor

router = APIRouter(
    tags=["workflows"],
    route_class=GuardedRoute,
    responses={
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": ErrorBody,
            "description": "The run store (or the apiserver) is unavailable",
        },
    },
)

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorBody, "description": "Workflow not found"}
}


async def existing_run(_: MayGet, run_id: RunId, backend: BackendDep, shown: ShowsEnv) -> RunRecord:
    """Resolves before a response starts, so an unknown id is a 404 even for a stream;
    plain env values are redacted for a caller who may only read."""
    return await _read(backend, run_id, shown=shown)


async def _read(backend: Backend, run_id: str, *, shown: bool, folded: bool = False) -> RunRecord:
    run = await backend.get(run_id, folded=folded)
    return run if shown else redact_env(run)


RunDep = Annotated[RunRecord, Depends(existing_run)]


def _form(body: Any) -> str:
    return "template-form" if isinstance(body, dict) and "templateRef" in body else "workflow-form"


# A body with `templateRef` runs a template; any other is a workflow. Told apart by that
# key alone, so a bad body's 422 names the fields of the form it meant, not of both (and
# the tag itself is taken out of each error's `loc`: api/guards.py).
Submission = Annotated[
    Annotated[WorkflowRequest, Tag("workflow-form")]
    | Annotated[TemplateSubmission, Tag("template-form")],
    Discriminator(_form),
]


@router.post(
    "/workflow",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        status.HTTP_400_BAD_REQUEST: {"model": ErrorBody, "description": "The workflow cannot run"},
        status.HTTP_408_REQUEST_TIMEOUT: {
            "model": ErrorBody,
            "description": "The body did not arrive in time",
        },
        status.HTTP_413_CONTENT_TOO_LARGE: {"model": ErrorBody, "description": "Body too large"},
    },
)
async def submit_workflow(
    caller: MayCreate, body: Submission, backend: BackendDep, response: Response
) -> Submitted:
    """Submit a workflow, or run a template by reference (`templateRef`, `params`); it
    starts at once. Poll `/workflow/{run_id}/status` or stream events."""
    origin = None
    if isinstance(body, TemplateSubmission):
        body, origin = await backend.catalog.resolve(body)
    record = await backend.submit(
        body, submitted_by=None if caller is ANONYMOUS else caller.name, origin=origin
    )
    RUNS_SUBMITTED.inc()
    response.headers["Location"] = f"/workflow/{record.run_id}"
    return Submitted(run_id=record.run_id, status=record.status.phase)


@router.get("/workflow/{run_id}/status", responses=NOT_FOUND)
async def workflow_status(_: MayGet, run_id: RunId, backend: BackendDep) -> dict[str, TaskPhase]:
    """Each task's phase, by task id."""
    return {
        task_id: TaskPhase(phase) for task_id, phase in (await backend.task_phases(run_id)).items()
    }


_PHASES = {phase.value.lower(): phase for phase in TaskPhase}


def _phases(tasks: str) -> frozenset[TaskPhase]:
    """`Failed,Running` (in any case) as phases; a 400 naming what is not one."""
    names = [name.strip() for name in tasks.split(",") if name.strip()]
    unknown = [name for name in names if name.lower() not in _PHASES]
    if unknown or not names:
        known = ", ".join(phase.value for phase in TaskPhase)
        raise InvalidRequestError(
            f"Unknown task phase in tasks: {', '.join(unknown) or '(none)'} "
            f"(all, summary, or a comma-separated list of {known})"
        )
    return frozenset(_PHASES[name.lower()] for name in names)


@router.get(
    "/workflow/{run_id}",
    responses={
        **NOT_FOUND,
        status.HTTP_400_BAD_REQUEST: {"model": ErrorBody, "description": "Unknown task phase"},
    },
    response_model_exclude_none=True,
)
async def get_workflow(
    _: MayGet,
    run_id: RunId,
    backend: BackendDep,
    shown: ShowsEnv,
    tasks: Annotated[
        str,
        Query(
            description="`summary` (the default): every task of a run of at most 1,000 "
            "entries; of a bigger one, its declared tasks, up to 100 instances per forEach "
            "that are under way or failed, and `status.fanouts` counting every instance by "
            "phase. `all`: every entry. A comma-separated list of phases (`Failed,Running`): "
            "only the entries in those.",
        ),
    ] = "summary",
    limit: Annotated[
        int | None,
        Query(
            ge=0,
            description="At most this many instances per forEach task, failed first (the "
            "summary's default: 100).",
        ),
    ] = None,
) -> RunRecord:
    """The run: its normalised spec and its status, with each task's detail (docs/big-runs.md
    says how a big run is summarised)."""
    phases = None if tasks in ("summary", "all") else _phases(tasks)
    # a big run is read as stored (folded) unless every entry is asked for: only what is
    # shown is made
    run = await _read(backend, run_id, shown=shown, folded=tasks != "all" or limit is not None)
    if tasks == "summary":
        status = summary(run.status, run_id=run_id, **({} if limit is None else {"limit": limit}))
    else:
        status = selected(run.status, phases, limit=limit, run_id=run_id)
    return run.model_copy(update={"status": status})


@router.get(
    "/workflows",
    response_model_exclude_none=True,
    responses={status.HTTP_400_BAD_REQUEST: {"model": ErrorBody, "description": "Invalid cursor"}},
)
async def list_workflows(
    _: MayList,
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
    responses={
        **NOT_FOUND,
        status.HTTP_409_CONFLICT: {"model": ErrorBody, "description": "Already finished"},
    },
)
async def cancel_workflow(
    _: MayPatch,
    run_id: RunId,
    backend: BackendDep,
    body: Annotated[CancelRequest | None, Body()] = None,
) -> Submitted:
    """Cancel a run: running tasks are cancelled, the rest become Cancelled. Its `finally`
    tasks still run, unless `{"force": true}`."""
    record = await backend.cancel(run_id, force=body is not None and body.force)
    return Submitted(run_id=record.run_id, status=record.status.phase)


@router.post(
    "/workflow/{run_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        **NOT_FOUND,
        status.HTTP_409_CONFLICT: {
            "model": ErrorBody,
            "description": "Not Failed or Cancelled, or another retry got there first",
        },
    },
)
async def retry_workflow(
    caller: MayPatch,
    run_id: RunId,
    backend: BackendDep,
    body: Annotated[RetryRequest | None, Body()] = None,
) -> Submitted:
    """Retry a Failed or Cancelled run from its failure, in place: the same run id; tasks
    that succeeded keep their outputs and do not run again (`from` re-runs a task and all
    after it). The run's status records the retry."""
    request = body or RetryRequest()
    record = await backend.retry(
        run_id,
        from_task=request.from_task,
        params=request.params,
        requested_by=None if caller is ANONYMOUS else caller.name,
    )
    return Submitted(run_id=record.run_id, status=record.status.phase)


_DECISION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    status.HTTP_409_CONFLICT: {
        "model": ErrorBody,
        "description": "The task is not waiting for approval, or was decided already",
    },
}


async def _decide(
    caller: Principal,
    run_id: str,
    task_id: str,
    backend: Backend,
    body: DecisionRequest | None,
    *,
    approved: bool,
) -> Submitted:
    request = body or DecisionRequest()
    if not approved and request.outputs:
        raise InvalidRequestError("A rejection takes no outputs")
    record = await backend.decide(
        run_id,
        task_id,
        Decision(
            approved=approved,
            by=None if caller is ANONYMOUS else caller.name,
            at=utcnow(),
            comment=request.comment,
            outputs=request.outputs if approved else None,
        ),
    )
    return Submitted(run_id=record.run_id, status=record.status.phase)


@router.post(
    "/workflow/{run_id}/tasks/{task_id}/approve",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_DECISION_RESPONSES,
)
async def approve_task(
    caller: MayApprove,
    run_id: RunId,
    task_id: str,
    backend: BackendDep,
    body: Annotated[DecisionRequest | None, Body()] = None,
) -> Submitted:
    """Approve a task that waits for it: it succeeds with the `outputs` given (checked
    against its `approval.inputs`) and the run goes on. Needs the `approve` permission."""
    return await _decide(caller, run_id, task_id, backend, body, approved=True)


@router.post(
    "/workflow/{run_id}/tasks/{task_id}/reject",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_DECISION_RESPONSES,
)
async def reject_task(
    caller: MayApprove,
    run_id: RunId,
    task_id: str,
    backend: BackendDep,
    body: Annotated[DecisionRequest | None, Body()] = None,
) -> Submitted:
    """Reject a task that waits for approval: it fails (with the comment), and so does the
    run unless the task has `continueOn: {failed: true}`. Needs the `approve` permission."""
    return await _decide(caller, run_id, task_id, backend, body, approved=False)


_HOLD_RESPONSES: dict[int | str, dict[str, Any]] = {
    **NOT_FOUND,
    status.HTTP_409_CONFLICT: {"model": ErrorBody, "description": "Already finished"},
}


@router.post(
    "/workflow/{run_id}/suspend", status_code=status.HTTP_202_ACCEPTED, responses=_HOLD_RESPONSES
)
async def suspend_workflow(_: MayPatch, run_id: RunId, backend: BackendDep) -> Submitted:
    """Suspend a run: no new task starts until it is resumed (running ones finish). Its
    status says `suspended: true`. Suspending a suspended run changes nothing."""
    record = await backend.hold(run_id, suspended=True)
    return Submitted(run_id=record.run_id, status=record.status.phase)


@router.post(
    "/workflow/{run_id}/resume", status_code=status.HTTP_202_ACCEPTED, responses=_HOLD_RESPONSES
)
async def resume_workflow(_: MayPatch, run_id: RunId, backend: BackendDep) -> Submitted:
    """Resume a suspended run: what was waiting starts. Resuming a run that is not
    suspended changes nothing."""
    record = await backend.hold(run_id, suspended=False)
    return Submitted(run_id=record.run_id, status=record.status.phase)


@router.delete("/workflow/{run_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_workflow(_: MayDelete, run_id: RunId, backend: BackendDep) -> None:
    """Delete a run; one still running is cancelled first."""
    await backend.delete(run_id)


@router.get(
    "/workflow/{run_id}/tasks/{task_id}/logs",
    response_class=PlainTextResponse,
    responses={
        status.HTTP_404_NOT_FOUND: {
            # JSON like every error, though the route's own answer is text
            "content": {"application/json": {"schema": ErrorBody.model_json_schema()}},
            "description": "No such run or task, or no log yet",
        },
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "content": {"application/json": {"schema": ErrorBody.model_json_schema()}},
            "description": "The run store (or the apiserver) is unavailable",
        },
    },
)
async def task_logs(
    _: MayGet,
    run_id: RunId,
    task_id: str,
    backend: BackendDep,
    follow: Annotated[
        bool, Query(description="Stream the log as the task writes it, until it ends.")
    ] = False,
) -> Response:
    """A task's output: its pod's log for a Job task, what it printed for an in-process one
    (its latest attempt, the last 64 KiB)."""
    if follow:
        return await followed_log(backend, run_id, task_id)
    return PlainTextResponse(await backend.task_log(run_id, task_id))


@router.get(
    "/workflow/{run_id}/events",
    response_class=EventSourceResponse,
    responses={
        **NOT_FOUND,
        status.HTTP_429_TOO_MANY_REQUESTS: {
            "model": ErrorBody,
            "description": "Too many streams from this client",
        },
        status.HTTP_503_SERVICE_UNAVAILABLE: {
            "model": ErrorBody,
            "description": "Too many streams open, or the store is unavailable",
        },
    },
    dependencies=[Depends(stream_slot)],
)
async def workflow_events(
    run: RunDep, backend: BackendDep, shown: ShowsEnv
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: a `snapshot` of the run, then an `update` per change, until it ends."""
    async for kind, data in run_events(backend, run.run_id, shown=shown):
        yield ServerSentEvent(event=kind, raw_data=json.dumps(data))
