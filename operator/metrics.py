"""The operator's Prometheus metrics, and the HTTP server that exposes them.

Why here and not in the engine: the engine is pure (it knows no Prometheus); the
operator sees every transition of every run through its status sink, so it counts
them there. Label values are bounded (phase, executor, result, verb, code), never a
run or task id: a series per run would grow without end.

The metrics live in prometheus-client's default registry, so the apiserver request
counters of the kube layer (stageflow.kube.metrics) and the process metrics show on
the same page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from stageflow.engine import RunStatus
from stageflow.models.status import TaskStatus

# Tasks and runs last from milliseconds to hours: the buckets span that.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)

RUNS_FINISHED = Counter(
    "stageflow_runs_finished", "WorkflowRuns this operator drove to their end, by phase.", ["phase"]
)
TASKS_FINISHED = Counter(
    "stageflow_tasks_finished",
    "Tasks that ended, by phase and executor (`none`: skipped or cancelled before starting).",
    ["phase", "executor"],
)
RUN_SECONDS = Histogram(
    "stageflow_run_duration_seconds",
    "From a run's startedAt to its finishedAt, by final phase.",
    ["phase"],
    buckets=DURATION_BUCKETS,
)
TASK_SECONDS = Histogram(
    "stageflow_task_duration_seconds",
    "From a task's startedAt to its finishedAt (all its attempts), by phase and executor.",
    ["phase", "executor"],
    buckets=DURATION_BUCKETS,
)
RUNS_ACTIVE = Gauge("stageflow_runs_active", "WorkflowRuns being driven by this operator.")
STATUS_PATCHES = Counter(
    "stageflow_status_patches",
    "Status patches of WorkflowRuns, by result (ok, error: retried from memory).",
    ["result"],
)
STATUS_PATCH_SECONDS = Histogram(
    "stageflow_status_patch_duration_seconds", "Latency of one status patch of a WorkflowRun."
)
MIRROR_WRITES = Counter(
    "stageflow_mirror_writes", "Writes of observed WorkflowRuns to Redis, by result.", ["result"]
)
MIRROR_LAG_SECONDS = Histogram(
    "stageflow_mirror_lag_seconds",
    "From a task's finishedAt to its entry being written to Redis.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MIRROR_PENDING = Gauge(
    "stageflow_mirror_pending_runs", "Runs whose newest version Redis does not hold yet."
)
LEADER = Gauge("stageflow_leader", "1 while this operator is the leader that drives runs, else 0.")


def _executor(task: TaskStatus) -> str:
    return task.executor or "none"


class RunMetrics:
    """Counts one run's task transitions as its status is published (once per task end)."""

    def __init__(self) -> None:
        self._finished: set[str] = set()

    def published(self, status: RunStatus, changed: frozenset[str]) -> None:
        for task_id in changed:
            task = status.tasks.get(task_id)
            if task is None:
                continue
            if not task.phase.finished:
                self._finished.discard(task_id)
                continue
            if task_id in self._finished:
                continue
            self._finished.add(task_id)
            phase, executor = task.phase.value, _executor(task)
            TASKS_FINISHED.labels(phase=phase, executor=executor).inc()
            if task.started_at is not None and task.finished_at is not None:
                seconds = (task.finished_at - task.started_at).total_seconds()
                TASK_SECONDS.labels(phase=phase, executor=executor).observe(max(0.0, seconds))

    @staticmethod
    def run_finished(status: RunStatus) -> None:
        phase = status.phase.value
        RUNS_FINISHED.labels(phase=phase).inc()
        if status.started_at is not None and status.finished_at is not None:
            seconds = (status.finished_at - status.started_at).total_seconds()
            RUN_SECONDS.labels(phase=phase).observe(max(0.0, seconds))


def serve_metrics(port: int, *, address: str = "0.0.0.0") -> Callable[[], Any]:
    """Serve /metrics on `port` (in a thread of prometheus-client's); returns its stop."""
    server, thread = start_http_server(port, addr=address)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return stop
