"""A typed Python client for the stageflow API, and a builder to write workflows in Python.

`Client` and `AsyncClient` have the same methods; answers are the API's own
pydantic models (`Submitted`, `RunRecord`, `RunSummary`, `RunEvent`, `TaskInfo`,
`TemplateRecord`, `ScheduleRecord`, `BackfillResult`), and
an error answer raises `ApiError` with its `status_code` and `detail`:

    from stageflow.client import Client, Stages, parallel, sequential

    with Client("http://127.0.0.1:8080") as client:
        run = client.submit(Stages(parallel("task_a", "task_b"), sequential("task_c")))
        print(client.wait(run.run_id).status.phase)
"""

from stageflow import DEFAULT_URL
from stageflow.client.aio import AsyncClient
from stageflow.client.builder import Dag, Stages, Task, parallel, sequential
from stageflow.client.calls import Event, apply
from stageflow.client.errors import (
    ApiError,
    ClientError,
    ConflictError,
    NotFoundError,
    UnreachableError,
)
from stageflow.client.sync import Client
from stageflow.models import RunPhase, TaskPhase, WorkflowRequest
from stageflow.models.api import RunList, Submitted, TaskInfo
from stageflow.models.records import RunEvent, RunOrigin, RunRecord, RunSummary
from stageflow.models.schedule import BackfillResult, ScheduleRecord, ScheduleSpec
from stageflow.models.template import TemplateRecord, WorkflowTemplateSpec

__all__ = [
    "DEFAULT_URL",
    "ApiError",
    "AsyncClient",
    "BackfillResult",
    "Client",
    "ClientError",
    "ConflictError",
    "Dag",
    "Event",
    "NotFoundError",
    "RunEvent",
    "RunList",
    "RunOrigin",
    "RunPhase",
    "RunRecord",
    "RunSummary",
    "ScheduleRecord",
    "ScheduleSpec",
    "Stages",
    "Submitted",
    "Task",
    "TaskInfo",
    "TaskPhase",
    "TemplateRecord",
    "UnreachableError",
    "WorkflowRequest",
    "WorkflowTemplateSpec",
    "apply",
    "parallel",
    "sequential",
]
