"""A run as it crosses every boundary: what a store keeps, the API answers and the client reads.

A `RunRecord` is the whole run (identity, normalised spec, status); a `RunSummary` is the
cheap subset a listing needs; a `RunEvent` is one status update as streamed to
`GET /workflow/{id}/events`. The same shapes serve the local backend, the Redis mirror the
operator writes, the API's answers and `stageflow.client`; they live here, below the
engine and the store, so the client reads them without importing either. A new run's
record is made from its plan by the engine (`stageflow.engine.records.new_record`).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from stageflow.models.folding import (
    SUMMARY_INSTANCES,
    entries_of,
    fanout_summaries,
    is_big,
    shown_instances,
)
from stageflow.models.request import WorkflowRequest
from stageflow.models.status import (
    FanoutSummary,
    QueueStatus,
    RunPhase,
    RunStatus,
    TaskStatus,
    Timestamp,
)


class InvalidRunIdError(ValueError):
    """A run ID that is not a canonical UUID: no run can have it."""


def checked_run_id(run_id: str) -> str:
    """`run_id` if it is a UUID in its canonical (lower-case, hyphenated) form.

    Every store key is built from a run ID, so an ID is checked before it becomes
    one: `{ID}:tasks` once named the *tasks hash* of a real run, and a DELETE of
    it wiped that run's task phases."""
    try:
        canonical = str(uuid.UUID(run_id))
    except (ValueError, TypeError, AttributeError):
        canonical = None
    if canonical != run_id:
        raise InvalidRunIdError(f"not a run ID: {run_id[:80]!r}")
    return run_id


class WireModel(BaseModel):
    """The API's envelope: snake_case like the seed's `run_id`; `spec` and `status` inside
    keep the WorkflowRun's camelCase, so they read the same as `kubectl get wfr -o json`."""

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class RunOrigin(WireModel):
    """Where a run came from, when not from a body sent as it is: the template revision it
    was resolved from (its name, revision and digest), the schedule slot that fired it."""

    template: str | None = Field(default=None, description="The template it was made from.")
    template_revision: int | None = Field(
        default=None, description="The template's revision it ran."
    )
    template_digest: str | None = Field(
        default=None, description="That revision's digest (sha256 of its normalised spec)."
    )
    schedule: str | None = Field(default=None, description="The schedule that fired it.")
    scheduled_time: Timestamp | None = Field(
        default=None, description="The slot it was fired for (UTC; its `scheduledTime` param)."
    )
    backfill: bool | None = Field(default=None, description="Fired by a backfill.")


class RunSummary(WireModel):
    run_id: str
    namespace: str | None = None
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: Timestamp
    phase: RunPhase
    progress: str
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    message: str | None = None


class RunRecord(WireModel):
    run_id: str
    namespace: str | None = Field(default=None, description="The WorkflowRun's (kubernetes).")
    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    created_at: Timestamp
    spec: WorkflowRequest
    status: RunStatus
    cancel_requested: bool = False
    submitted_by: str | None = Field(
        default=None, description="Who submitted the run (the authenticated name)."
    )
    origin: RunOrigin | None = Field(
        default=None, description="The template revision and schedule slot it came from."
    )

    def summary(self) -> RunSummary:
        status = self.status
        return RunSummary(
            run_id=self.run_id,
            namespace=self.namespace,
            name=self.name,
            labels=self.labels,
            created_at=self.created_at,
            phase=status.phase,
            progress=status.progress,
            started_at=status.started_at,
            finished_at=status.finished_at,
            message=status.message,
        )


class RunEvent(WireModel):
    """One status update: run-level fields and the task entries that changed."""

    run_id: str
    phase: RunPhase
    progress: str
    message: str | None = None
    suspended: bool | None = None
    queue: QueueStatus | None = Field(
        default=None, description="While Queued: the keys it waits for and its place."
    )
    tasks: dict[str, TaskStatus] = Field(default_factory=dict)
    fanouts: dict[str, FanoutSummary] | None = Field(
        default=None,
        description="Each forEach task's instances counted by phase (when the run has any).",
    )
    omitted: int | None = Field(
        default=None,
        description="In a big run's update: changed instances left out of `tasks` (counted "
        "in `fanouts`; only those under way or failed are sent).",
    )

    @classmethod
    def of(cls, run_id: str, status: RunStatus, changed: frozenset[str]) -> RunEvent:
        """The update of `changed` tasks. A big run's (models/folding.py) carries its
        declared tasks and, per forEach task, at most 100 of the instances under way or
        failed (failed first), and counts the rest in `fanouts`: a change of ten thousand
        instances is not ten thousand entries."""
        tasks = entries_of(status, changed, run_id=run_id)  # the status may be folded
        fanouts = fanout_summaries(status.tasks, status.folded or ()) or None
        omitted = None
        if is_big(status):
            kept = shown_instances(tasks, limit=SUMMARY_INSTANCES)
            tasks, omitted = kept, len(tasks) - len(kept)
        return cls(
            run_id=run_id,
            phase=status.phase,
            progress=status.progress,
            message=status.message,
            suspended=status.suspended,
            queue=status.queue,
            tasks=tasks,
            fanouts=fanouts,
            omitted=omitted,
        )
