"""What a store keeps of a run, and what it tells subscribers.

A `RunRecord` is the whole run (identity, normalised spec, status); a
`RunSummary` is the cheap subset a listing needs; a `RunEvent` is one status
update as streamed to `GET /workflow/{id}/events`. The same shapes serve the
local backend, the Redis mirror the operator writes, and the API's answers.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from stageflow.engine import (
    Plan,
    RunPhase,
    RunStatus,
    TaskStatus,
    WorkflowRequest,
    initial_status,
)
from stageflow.engine.status import Timestamp, format_timestamp, utcnow


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

    @classmethod
    def new(cls, plan: Plan, *, submitted_by: str | None = None) -> RunRecord:
        """The record of a run about to start: a fresh UUID4, every task Pending."""
        options = plan.options
        return cls(
            run_id=str(uuid.uuid4()),
            name=options.name,
            labels=options.labels,
            created_at=utcnow(),
            spec=plan.spec,
            status=initial_status(plan),
            submitted_by=submitted_by,
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
    tasks: dict[str, TaskStatus] = Field(default_factory=dict)

    @classmethod
    def of(cls, run_id: str, status: RunStatus, changed: frozenset[str]) -> RunEvent:
        return cls(
            run_id=run_id,
            phase=status.phase,
            progress=status.progress,
            message=status.message,
            tasks={
                task_id: status.tasks[task_id] for task_id in changed if task_id in status.tasks
            },
        )


class RunPage(BaseModel):
    items: list[RunSummary]
    next_cursor: str | None = None


def paginate(
    summaries: Iterable[RunSummary],
    *,
    phase: RunPhase | None,
    limit: int,
    cursor: Cursor | None,
    namespace: str | None = None,
) -> RunPage:
    """Newest first, of one phase and namespace if asked, after `cursor`, `limit` at a time."""
    ordered = sorted(summaries, key=lambda s: (s.created_at, s.run_id), reverse=True)
    matching = [
        summary
        for summary in ordered
        if (phase is None or summary.phase is phase)
        and (namespace is None or summary.namespace == namespace)
        and (cursor is None or cursor.is_after(summary))
    ]
    page = matching[:limit]
    next_cursor = None
    if len(matching) > limit:
        next_cursor = Cursor(created_at=page[-1].created_at, run_id=page[-1].run_id).encode()
    return RunPage(items=page, next_cursor=next_cursor)


class Cursor(BaseModel):
    """Where a newest-first listing stopped: stable while new runs arrive."""

    created_at: datetime
    run_id: str

    def encode(self) -> str:
        raw = f"{format_timestamp(self.created_at)}|{self.run_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> Cursor:
        """Raise ValueError for a token this code did not make."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            created, run_id = raw.split("|", 1)
            return cls(
                created_at=datetime.fromisoformat(created.replace("Z", "+00:00")), run_id=run_id
            )
        except (binascii.Error, UnicodeDecodeError, ValueError) as error:
            raise ValueError(f"invalid cursor {token!r}") from error

    def is_after(self, summary: RunSummary) -> bool:
        """Whether `summary` comes after this cursor in newest-first order."""
        return (summary.created_at, summary.run_id) < (self.created_at, self.run_id)
