"""Response bodies, and the small request bodies of actions on a run. The workflow request
itself is in request.py (one definition of the format)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from stageflow.models.records import RunSummary
from stageflow.models.status import RunPhase


class Submitted(BaseModel):
    run_id: str = Field(description="The run's unique id (a UUID4).")
    status: RunPhase


class CancelRequest(BaseModel):
    """The optional body of POST /workflow/{id}/cancel."""

    model_config = ConfigDict(extra="forbid")

    force: bool = Field(
        default=False,
        description="Cancel the `finally` tasks too (a plain cancel lets them run, as Argo's "
        "`stop` does; this is its `terminate`).",
    )


class RetryRequest(BaseModel):
    """The optional body of POST /workflow/{id}/retry."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_task: str | None = Field(
        default=None,
        alias="from",
        min_length=1,
        max_length=63,
        description="Re-run this task and every task after it, even those that succeeded.",
    )
    params: dict[str, Any] | None = Field(
        default=None,
        description="Run parameters to override for the re-run (tasks that keep their "
        "success keep their outputs).",
    )


class DecisionRequest(BaseModel):
    """The optional body of POST /workflow/{id}/tasks/{task}/approve (or /reject)."""

    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(
        default=None, max_length=4096, description="Why; recorded in the task's status."
    )
    outputs: dict[str, Any] | None = Field(
        default=None,
        description="What the approver supplies (approve only), checked against the task's "
        "`approval.inputs`; the tasks after it read it as {{ tasks.NAME.outputs.KEY }}.",
    )


class RunList(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent on the last page."
    )


class TaskInfo(BaseModel):
    name: str
    description: str
    parameters: list[str]
    is_async: bool


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)


class ErrorBody(BaseModel):
    """Every error but a 422 (FastAPI's validation shape): a `detail` naming the problem."""

    detail: str = Field(description="What went wrong, naming the field, limit or setting.")
