"""Retrying a finished run from its failure, in place (Argo's `argo retry`): which tasks go
back to Pending, and what the run's status keeps of what happened before.

The same run id, the same record: tasks that succeeded keep their status and outputs and
never run again; the rest go back to Pending and the runner, given the reset status, runs
exactly those (it already resumes runs that way). Both backends call this one function:
the local backend in the API, the operator on Kubernetes (the API only asks there).
"""

from __future__ import annotations

import graphlib
from collections import defaultdict
from datetime import datetime
from typing import Any

from stageflow.engine.plan import Plan, SpecError
from stageflow.models.folding import MAX_MESSAGE
from stageflow.models.status import RetryRecord, RunPhase, RunStatus, TaskPhase, TaskStatus
from stageflow.models.task_ids import compress_ids

MAX_RETRY_RECORDS = 20  # the status is an etcd object: its history is bounded
RETRYABLE = (RunPhase.FAILED, RunPhase.CANCELLED)


class NotRetryableError(ValueError):
    """The run is not in a phase a retry starts from (the API answers 409)."""


def downstream(plan: Plan, task_id: str) -> set[str]:
    """`task_id` and every task that waits for it, directly or not."""
    dependants: dict[str, list[str]] = defaultdict(list)
    for node in plan.tasks.values():
        for dependency in node.depends_on:
            dependants[dependency].append(node.id)
    found, stack = {task_id}, [task_id]
    while stack:
        for dependant in dependants[stack.pop()]:
            if dependant not in found:
                found.add(dependant)
                stack.append(dependant)
    return found


def check_retryable(plan: Plan, status: RunStatus, from_task: str | None) -> None:
    """Raise NotRetryableError (a run not Failed or Cancelled) or SpecError (`from` names
    no task of the run), before anything is written."""
    if status.phase not in RETRYABLE:
        raise NotRetryableError(
            f"Run is {status.phase.value}: only a Failed or Cancelled run can be retried"
        )
    if from_task is not None and from_task not in plan.tasks:
        raise SpecError(f"Unknown task: {from_task} (retry from)")


def retried_status(
    plan: Plan,
    status: RunStatus,
    *,
    retry_id: str,
    at: datetime,
    by: str | None = None,
    from_task: str | None = None,
    params: dict[str, Any] | None = None,
) -> RunStatus:
    """The status of `plan`'s run (the one it ran with, or with `params` overridden) after
    a retry: failed, cancelled and skipped tasks back to Pending (a task its `when` skipped
    stays skipped unless a task it waits for is reset), `from_task` and everything after
    it too, and the finally tasks, which run again at the end. `attempts` count on."""
    check_retryable(plan, status, from_task)
    new = status.model_copy(deep=True)
    forced = downstream(plan, from_task) if from_task is not None else set()
    to_reset: set[str] = set()
    order = graphlib.TopologicalSorter({t: n.depends_on for t, n in plan.tasks.items()})
    for task_id in order.static_order():  # dependencies first: a reset is seen downstream
        node = plan.tasks[task_id]
        task = new.tasks.setdefault(task_id, TaskStatus(executor=node.executor.value))
        upstream_reset = any(dependency in to_reset for dependency in node.depends_on)
        done = task.phase is TaskPhase.SUCCEEDED or (
            task.skipped_by_condition and not upstream_reset
        )
        if node.final or task_id in forced or not done:
            to_reset.add(task_id)
    reset = [task_id for task_id in plan.tasks if task_id in to_reset]
    messages: dict[str, str] = {}
    for task_id in reset:
        _reset(new, task_id, messages, drop_instances=task_id in forced)
    # timeoutSeconds counts from the retry's start, not the first run's
    new.phase, new.message, new.started_at, new.finished_at = RunPhase.PENDING, None, None, None
    new.tolerated_failures, new.main_phase = None, None
    record = RetryRecord(
        id=retry_id,
        at=at,
        by=by,
        from_task=from_task,
        params=params or None,
        previous_phase=status.phase,
        # a retry of thousands of instances names them in ranges, and at most 100 parts
        # and 100 messages: up to 20 records stay in the WorkflowRun (docs/big-runs.md)
        reset=reset if len(reset) <= MAX_NAMED else compress_ids(reset)[:MAX_NAMED],
        reset_count=len(reset) if len(reset) > MAX_NAMED else None,
        messages={
            task_id: text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"
            for task_id, text in list(messages.items())[:MAX_NAMED]
        },
    )
    new.retries = [*(status.retries or []), record][-MAX_RETRY_RECORDS:]
    new.refresh_progress()
    return new


MAX_NAMED = 100  # reset tasks (or ranges of instances) and messages one retry record keeps


def _reset(
    status: RunStatus, task_id: str, messages: dict[str, str], *, drop_instances: bool
) -> None:
    """Back to Pending, keeping its attempt count; its forEach instances that did not
    succeed too (all of them, dropped, when the task re-runs by `from`)."""
    old = status.tasks[task_id]
    if old.message:
        messages[task_id] = old.message
    status.tasks[task_id] = TaskStatus(attempts=old.attempts, executor=old.executor)
    prefix = f"{task_id}["
    for instance in [other for other in status.tasks if other.startswith(prefix)]:
        entry = status.tasks[instance]
        if drop_instances:
            del status.tasks[instance]
        elif entry.phase is not TaskPhase.SUCCEEDED:
            if entry.message:
                messages[instance] = entry.message
            status.tasks[instance] = TaskStatus(attempts=entry.attempts, executor=entry.executor)
