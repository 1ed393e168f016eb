"""What crosses a boundary: the request, statuses, run records and the API's envelopes.

One definition of each shape, below every other layer: the engine validates and runs
the request models, the stores keep the records, the API answers with them and
`stageflow.client` reads them. It imports pydantic and nothing of stageflow's, so a
program that only talks to the API installs none of the server's dependencies.
"""

from stageflow.models.api import ErrorBody, Health, RunList, Submitted, TaskInfo
from stageflow.models.records import (
    InvalidRunIdError,
    RunEvent,
    RunRecord,
    RunSummary,
    checked_run_id,
)
from stageflow.models.request import Executor, RunOptions, Stage, TaskSpec, WorkflowRequest
from stageflow.models.status import RunPhase, RunStatus, TaskPhase, TaskStatus

__all__ = [
    "ErrorBody",
    "Executor",
    "Health",
    "InvalidRunIdError",
    "RunEvent",
    "RunList",
    "RunOptions",
    "RunPhase",
    "RunRecord",
    "RunStatus",
    "RunSummary",
    "Stage",
    "Submitted",
    "TaskInfo",
    "TaskPhase",
    "TaskSpec",
    "TaskStatus",
    "WorkflowRequest",
    "checked_run_id",
]
