"""Run and task status: the one spelling of phases and timestamps everywhere.

The same models are stored by the local backend, written into the WorkflowRun's
status subresource by the operator, mirrored to Redis and returned by the API,
so a phase or a timestamp reads the same wherever a user looks.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from stageflow.models.task_ids import expand_ids


def utcnow() -> datetime:
    return datetime.now(UTC)


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a `Z` suffix and microseconds (Kubernetes' MicroTime).
    isoformat, not strftime: every status and record write formats each task's times,
    and strftime was 2.5% of the operator's CPU under load."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_timestamp(text: str | None) -> datetime | None:
    """An RFC 3339 timestamp as stageflow and Kubernetes write them (None for none)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


Timestamp = Annotated[datetime, PlainSerializer(format_timestamp, return_type=str)]


class TaskPhase(enum.StrEnum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SKIPPED = "Skipped"
    CANCELLED = "Cancelled"
    WAITING = "Waiting"  # an approval task, until a person decides (or its time runs out)

    @property
    def finished(self) -> bool:
        return self not in (TaskPhase.PENDING, TaskPhase.RUNNING, TaskPhase.WAITING)


# The sign shown beside each phase's name wherever a phase is drawn (CLI, web page).
PHASE_MARKS = {
    "Pending": "·",
    "Running": "▶",
    "Succeeded": "✓",
    "Failed": "✗",
    "Skipped": "-",
    "Cancelled": "⊘",
    "Waiting": "⏸",
    "Queued": "…",
}


class RunPhase(enum.StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"  # waiting for a concurrency key's turn (not started)
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (RunPhase.SUCCEEDED, RunPhase.FAILED, RunPhase.CANCELLED)


class StatusModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    def to_json_dict(self) -> dict[str, object]:
        """The wire form: camelCase keys, timestamps as strings, unset fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class CachedFrom(StatusModel):
    """Which run and task produced the outputs a cached task reused."""

    run_id: str = Field(description="The run whose task recorded the result.")
    task: str = Field(description="That task's id there (NAME[i] for a forEach instance).")


class TaskStatus(StatusModel):
    phase: TaskPhase = TaskPhase.PENDING
    attempts: int = 0
    # Attempts made before the current run of attempts (a retry of the run, an `until`
    # iteration): `retries` counts from here, while `attempts` counts on.
    attempts_before: int | None = None
    # After a failed attempt with retries left: when the next one is due. In the status, so
    # a run resumed in its backoff waits out the rest of it and counts the failure.
    next_attempt_at: Timestamp | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    message: str | None = None
    executor: str | None = None
    job_name: str | None = None
    outputs: Any = None
    iterations: int | None = None
    when_result: bool | None = None
    decision: Decision | None = None  # an approval task's, once made
    # Succeeded by reusing a recorded result (docs/cache.md): nothing ran, attempts stay 0.
    cached: bool | None = None
    cached_from: CachedFrom | None = None

    @property
    def skipped_by_condition(self) -> bool:
        """Skipped because its `when` was false: done, for the tasks that depend on it."""
        return self.phase is TaskPhase.SKIPPED and self.when_result is False


class Decision(StatusModel):
    """A person's answer to an approval task, as its status keeps it."""

    approved: bool = Field(description="True: approved; False: rejected.")
    by: str | None = Field(default=None, description="Who decided (the authenticated caller).")
    at: Timestamp = Field(description="When (UTC).")
    comment: str | None = Field(default=None, description="What they wrote.")
    outputs: dict[str, Any] | None = Field(
        default=None, description="What they supplied (the task's outputs once approved)."
    )
    timed_out: bool | None = Field(
        default=None, description="True: nobody decided in time; `onTimeout` decided."
    )


class RetryRecord(StatusModel):
    """One retry of a finished run, as its status keeps it: nothing that happened before
    is lost from view (`messages` holds what the reset tasks had said)."""

    id: str = Field(description="The retry's id (the request's, so it is applied once).")
    at: Timestamp = Field(description="When it was requested (UTC).")
    by: str | None = Field(default=None, description="Who asked (the authenticated caller).")
    from_task: str | None = Field(
        default=None,
        description="`from`: this task and all after it re-ran, even if they had succeeded.",
    )
    params: dict[str, Any] | None = Field(default=None, description="Run parameters it overrode.")
    previous_phase: RunPhase = Field(description="The run's phase before it.")
    reset: list[str] = Field(
        description="The tasks it set back to Pending (past 100: the first 100 parts, "
        "instances as NAME[a-b] ranges)."
    )
    reset_count: int | None = Field(
        default=None, description="Past 100: how many tasks and instances it set back."
    )
    messages: dict[str, str] = Field(
        default_factory=dict, description="What each reset task's last message was."
    )


class QueueStatus(StatusModel):
    """Why a run is Queued: the keys it waits for, and its place in their lines."""

    keys: list[str] = Field(description="The concurrency keys the run waits for.")
    position: int = Field(description="1: next in line (the largest place among its keys).")
    since: Timestamp | None = Field(default=None, description="When it started waiting.")


class FoldedTasks(StatusModel):
    """Entries of a big run stored as one (stageflow/models/folding.py): what they share,
    which tasks they are, and the outputs of those that have some."""

    like: TaskStatus = Field(description="The fields every member has (no times, no outputs).")
    tasks: list[str] = Field(
        description="The members: task ids, and NAME[a-b] for instances a to b of a forEach."
    )
    count: int = Field(description="How many members.")
    outputs: dict[str, Any] | None = Field(
        default=None, description="The outputs of the members that have some, by task id."
    )


class FanoutSummary(StatusModel):
    """A forEach task's instances counted by phase."""

    total: int = Field(description="Its instances.")
    phases: dict[str, int] = Field(description="How many are in each phase.")


class RunStatus(StatusModel):
    phase: RunPhase = RunPhase.PENDING
    queue: QueueStatus | None = Field(
        default=None, description="While Queued: the keys it waits for and its position."
    )
    progress: str = "0/0"
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    message: str | None = None
    tolerated_failures: list[str] | None = Field(
        default=None,
        description="Tasks that failed with `continueOn: {failed: true}`: the run went on "
        "past them.",
    )
    # Kept in the status so that a run resumed while its finally tasks run keeps it.
    main_phase: RunPhase | None = Field(
        default=None,
        description="In a run with `finally` tasks: the main graph's outcome, once it has "
        "ended ({{ run.phase }} to the finally tasks).",
    )
    suspended: bool | None = Field(
        default=None,
        description="True while the run is suspended: no new task starts (running ones finish).",
    )
    retries: list[RetryRecord] | None = Field(
        default=None,
        description="Each retry of the run from its failure, oldest first (at most 20 kept).",
    )
    tasks: dict[str, TaskStatus] = Field(default_factory=dict)
    folded: list[FoldedTasks] | None = Field(
        default=None,
        description="In a run of more than 1,000 entries as stored: the entries that are "
        "alike, grouped (docs/big-runs.md); `tasks` then holds the rest.",
    )
    fanouts: dict[str, FanoutSummary] | None = Field(
        default=None,
        description="In a summary of a run: each forEach task's instances counted by phase.",
    )
    omitted: int | None = Field(
        default=None,
        description="In a summary of a big run: how many instances `tasks` leaves out "
        "(`?tasks=all` lists them).",
    )

    def refresh_progress(self) -> None:
        done = sum(1 for task in self.tasks.values() if task.phase.finished)
        self.progress = f"{done}/{len(self.tasks)}"

    def entry_count(self) -> int:
        """Task entries, whole or folded."""
        return len(self.tasks) + sum(group.count for group in self.folded or ())

    def task_phases(self) -> dict[str, str]:
        """Each task's phase, folded ones too (a group's, where it names a task)."""
        phases = {task_id: task.phase.value for task_id, task in self.tasks.items()}
        for group in self.folded or ():
            phase = group.like.phase.value
            phases.update((task_id, phase) for task_id in expand_ids(group.tasks))
        return phases
