"""Schedules: `PUT /schedules/{name}` (create or replace), read (with the status the
scheduler keeps), list, delete, pause and resume, backfill. The verbs are those on
`schedules` (api/auth): pause, resume and backfill are `patch`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from stageflow.api.auth import (
    MayCreateSchedule,
    MayDeleteSchedule,
    MayGetSchedule,
    MayListSchedules,
    MayPatchSchedule,
    MayUpdateSchedule,
)
from stageflow.api.deps import BackendDep
from stageflow.api.guards import GuardedRoute
from stageflow.models.api import ErrorBody
from stageflow.models.schedule import (
    BackfillRequest,
    BackfillResult,
    ScheduleList,
    ScheduleRecord,
    ScheduleSpec,
)
from stageflow.models.template import TemplateName

router = APIRouter(tags=["schedules"], route_class=GuardedRoute)

NameDep = Annotated[TemplateName, Path(description="The schedule's name (a DNS label).")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    status.HTTP_404_NOT_FOUND: {"model": ErrorBody, "description": "Schedule not found"}
}


@router.put(
    "/schedules/{name}",
    responses={
        status.HTTP_201_CREATED: {"model": ScheduleRecord, "description": "Created"},
        status.HTTP_400_BAD_REQUEST: {
            "model": ErrorBody,
            "description": "A cron or time zone that does not parse, or what it runs "
            "does not validate",
        },
    },
    response_model_exclude_none=True,
)
async def put_schedule(
    _: MayCreateSchedule,
    __: MayUpdateSchedule,
    name: NameDep,
    body: ScheduleSpec,
    backend: BackendDep,
    response: Response,
) -> ScheduleRecord:
    """Create or replace a schedule (its status stays): 201 when created, else 200."""
    record, created = await backend.catalog.put_schedule(name, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return record


@router.get("/schedules", response_model_exclude_none=True)
async def list_schedules(_: MayListSchedules, backend: BackendDep) -> ScheduleList:
    return ScheduleList(items=await backend.catalog.schedules.list())


@router.get("/schedules/{name}", responses=NOT_FOUND, response_model_exclude_none=True)
async def get_schedule(_: MayGetSchedule, name: NameDep, backend: BackendDep) -> ScheduleRecord:
    """The schedule with its status: last and next slot, runs going and recent, counts."""
    return await backend.catalog.schedule(name)


@router.delete("/schedules/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
async def delete_schedule(_: MayDeleteSchedule, name: NameDep, backend: BackendDep) -> None:
    """Delete the schedule; the runs it started stay (delete them apart)."""
    await backend.catalog.delete_schedule(name)


@router.post("/schedules/{name}/pause", responses=NOT_FOUND, response_model_exclude_none=True)
async def pause_schedule(_: MayPatchSchedule, name: NameDep, backend: BackendDep) -> ScheduleRecord:
    """Set `suspend`: no slot fires (slots that pass are counted as missed)."""
    return await backend.catalog.hold_schedule(name, suspend=True)


@router.post("/schedules/{name}/resume", responses=NOT_FOUND, response_model_exclude_none=True)
async def resume_schedule(
    _: MayPatchSchedule, name: NameDep, backend: BackendDep
) -> ScheduleRecord:
    """Clear `suspend` (also after `pauseOnFailure`): slots fire again from now on."""
    return await backend.catalog.hold_schedule(name, suspend=False)


@router.post(
    "/schedules/{name}/backfill",
    responses={
        **NOT_FOUND,
        status.HTTP_400_BAD_REQUEST: {
            "model": ErrorBody,
            "description": "A reversed range, or one of more than 1,000 slots",
        },
    },
    response_model_exclude_none=True,
)
async def backfill_schedule(
    _: MayPatchSchedule, name: NameDep, body: BackfillRequest, backend: BackendDep
) -> BackfillResult:
    """Fire the slots of a past range [start, end), each at most once (a slot that fired
    already does not fire again), under `overlapPolicy`; `dryRun` lists them only."""
    return await backend.catalog.backfill(name, body)
