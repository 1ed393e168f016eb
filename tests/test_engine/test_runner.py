"""The runner's semantics (design §5), observed through the status it publishes."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime, timedelta
from typing import Any

import pytest

from stageflow.engine import (
    CoalescingSink,
    RunPhase,
    RunStatus,
    TaskPhase,
    TaskRegistry,
    TaskStatus,
)
from stageflow.models.status import utcnow
from tests.support.engine import RecordingSink, RunBody, make_runner
from tests.support.overlap import all_overlap, intervals, never_overlap
from tests.support.polling import eventually


def phases(status: RunStatus) -> dict[str, str]:
    return status.task_phases()


async def test_seed_workflow_succeeds_with_parallel_then_final(run_body: RunBody) -> None:
    body = {
        "workflow": [
            {"type": "parallel", "tasks": ["task_a", "task_b"]},
            {"type": "sequential", "tasks": ["task_c"]},
        ]
    }
    status = await run_body(body)
    assert status.phase is RunPhase.SUCCEEDED
    assert phases(status) == {"task_a": "Succeeded", "task_b": "Succeeded", "task_c": "Succeeded"}
    assert status.progress == "3/3"
    a, b, c = intervals(status, "task_a", "task_b", "task_c")
    assert c[0] >= max(a[1], b[1]), "task_c started before the parallel stage ended"


async def test_parallel_sleeps_overlap(run_body: RunBody) -> None:
    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    {"name": f"s{i}", "task": "sleep", "params": {"seconds": 0.3}} for i in range(4)
                ],
            }
        ]
    }
    status = await run_body(body)
    assert status.phase is RunPhase.SUCCEEDED
    assert all_overlap(intervals(status, "s0", "s1", "s2", "s3"))


async def test_sequential_sleeps_never_overlap(run_body: RunBody) -> None:
    body = {
        "workflow": [
            {
                "type": "sequential",
                "tasks": [
                    {"name": f"s{i}", "task": "sleep", "params": {"seconds": 0.05}}
                    for i in range(3)
                ],
            }
        ]
    }
    status = await run_body(body)
    assert never_overlap(intervals(status, "s0", "s1", "s2"))


async def test_sync_tasks_run_in_threads_without_blocking_the_loop(
    tasks: TaskRegistry, run_body: RunBody
) -> None:
    threads: set[str] = set()

    def blocking(seconds: float) -> bool:
        threads.add(threading.current_thread().name)
        time.sleep(seconds)
        return True

    tasks.register(blocking)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    {"name": f"b{i}", "task": "blocking", "params": {"seconds": 0.3}}
                    for i in range(3)
                ],
            }
        ]
    }
    ticking = asyncio.create_task(ticker())
    status = await run_body(body)
    ticking.cancel()
    assert all_overlap(intervals(status, "b0", "b1", "b2"))
    assert len(threads) == 3
    assert all(name.startswith("stageflow-task") for name in threads)
    assert ticks >= 10, "the event loop stalled while sync tasks ran"


async def test_dag_runs_in_dependency_order(run_body: RunBody) -> None:
    body = {
        "dag": [
            {"name": "d", "task": "task_d", "dependsOn": ["b", "c"]},
            {"name": "b", "task": "sleep", "params": {"seconds": 0.05}, "dependsOn": ["a"]},
            {"name": "c", "task": "task_c", "dependsOn": ["a"]},
            {"name": "a", "task": "task_a"},
        ]
    }
    status = await run_body(body)
    a, b, c, d = intervals(status, "a", "b", "c", "d")
    assert b[0] >= a[1]
    assert c[0] >= a[1]
    assert d[0] >= max(b[1], c[1])


async def test_failure_with_fail_fast_skips_the_rest_and_lets_running_finish(
    run_body: RunBody,
) -> None:
    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    {"name": "boom", "task": "fail", "params": {"message": "disk full"}},
                    {"name": "slow", "task": "sleep", "params": {"seconds": 0.2}},
                ],
            },
            {"type": "sequential", "tasks": ["task_c"]},
        ]
    }
    status = await run_body(body)
    assert status.phase is RunPhase.FAILED
    assert phases(status) == {"boom": "Failed", "slow": "Succeeded", "task_c": "Skipped"}
    assert status.tasks["boom"].message == "RuntimeError: disk full"
    assert status.message == "Task boom failed: RuntimeError: disk full"
    assert status.tasks["task_c"].message == "upstream task boom failed"


async def test_fail_fast_stops_unrelated_branches_from_starting(run_body: RunBody) -> None:
    body = {
        "parallelism": 1,
        "dag": [
            {"name": "boom", "task": "fail"},
            {"name": "other", "task": "task_a"},
        ],
    }
    status = await run_body(body)
    assert phases(status) == {"boom": "Failed", "other": "Skipped"}
    assert status.tasks["other"].message == "not started: task boom failed and failFast is on"


async def test_without_fail_fast_independent_branches_continue(run_body: RunBody) -> None:
    body = {
        "failFast": False,
        "dag": [
            {"name": "boom", "task": "fail"},
            {"name": "after_boom", "task": "task_a", "dependsOn": ["boom"]},
            {"name": "after_that", "task": "task_a", "dependsOn": ["after_boom"]},
            {"name": "free", "task": "sleep", "params": {"seconds": 0.05}},
            {"name": "after_free", "task": "task_b", "dependsOn": ["free"]},
        ],
    }
    status = await run_body(body)
    assert status.phase is RunPhase.FAILED
    assert phases(status) == {
        "boom": "Failed",
        "after_boom": "Skipped",
        "after_that": "Skipped",
        "free": "Succeeded",
        "after_free": "Succeeded",
    }
    assert status.tasks["after_that"].message == "upstream task after_boom skipped"


async def test_retries_count_attempts_and_back_off(tasks: TaskRegistry, run_body: RunBody) -> None:
    calls: list[float] = []

    def flaky() -> bool:
        calls.append(time.monotonic())
        if len(calls) < 3:
            raise ConnectionError(f"try {len(calls)}")
        return True

    tasks.register(flaky)
    sink = RecordingSink()
    body = {"dag": [{"name": "f", "task": "flaky", "retries": 3, "retryBackoffSeconds": 0.05}]}
    status = await run_body(body, sink)
    assert status.tasks["f"].phase is TaskPhase.SUCCEEDED
    assert status.tasks["f"].attempts == 3
    assert calls[1] - calls[0] >= 0.05
    assert calls[2] - calls[1] >= 0.1
    messages = [s.tasks["f"].message for s, _, _ in sink.published]
    assert "attempt 1 failed: ConnectionError: try 1; retrying in 0.05s" in messages


async def test_retries_exhausted_fail_with_the_last_message(run_body: RunBody) -> None:
    body = {"dag": [{"name": "f", "task": "fail", "retries": 2, "retryBackoffSeconds": 0}]}
    status = await run_body(body)
    assert status.tasks["f"].phase is TaskPhase.FAILED
    assert status.tasks["f"].attempts == 3


async def test_task_timeout_fails_with_a_message_that_says_so(run_body: RunBody) -> None:
    body = {
        "dag": [{"name": "t", "task": "sleep", "params": {"seconds": 5}, "timeoutSeconds": 0.05}]
    }
    status = await run_body(body)
    assert status.tasks["t"].phase is TaskPhase.FAILED
    assert status.tasks["t"].message == "timed out after 0.05s"


async def test_run_timeout_fails_running_and_skips_pending(run_body: RunBody) -> None:
    body = {
        "timeoutSeconds": 0.1,
        "workflow": [
            {
                "type": "sequential",
                "tasks": [{"name": "long", "task": "sleep", "params": {"seconds": 5}}, "task_c"],
            }
        ],
    }
    status = await run_body(body)
    assert status.phase is RunPhase.FAILED
    assert status.message == "Run timed out after 0.1s"
    assert phases(status) == {"long": "Failed", "task_c": "Skipped"}
    assert status.tasks["long"].message == "stopped: Run timed out after 0.1s"


async def test_cancel_cancels_running_and_pending(tasks: TaskRegistry) -> None:
    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [{"name": "long", "task": "sleep", "params": {"seconds": 5}}],
            },
            {"type": "parallel", "tasks": ["task_c"]},
        ]
    }
    runner = make_runner(body, tasks)
    running = asyncio.create_task(runner.run())

    # Until it runs (a fixed sleep here was a race on a busy machine), bounded.
    async def long_runs() -> bool:
        return runner.status.tasks["long"].phase is TaskPhase.RUNNING

    await eventually(long_runs, within=5)
    runner.cancel()
    status = await running
    assert status.phase is RunPhase.CANCELLED
    assert phases(status) == {"long": "Cancelled", "task_c": "Cancelled"}
    assert status.message == "Cancelled by request"


async def test_cancel_before_start_runs_nothing(tasks: TaskRegistry) -> None:
    runner = make_runner({"dag": [{"name": "a", "task": "task_a"}]}, tasks)
    runner.cancel()
    status = await runner.run()
    assert status.phase is RunPhase.CANCELLED
    assert status.tasks["a"].attempts == 0


async def test_parallelism_bounds_concurrency(tasks: TaskRegistry, run_body: RunBody) -> None:
    active = peak = 0

    async def counted() -> bool:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return True

    tasks.register(counted)
    body = {
        "parallelism": 3,
        "workflow": [{"type": "parallel", "tasks": ["counted"] * 10}],
    }
    status = await run_body(body)
    assert status.progress == "10/10"
    assert peak == 3


async def test_resume_never_reruns_succeeded_and_reattempts_running(tasks: TaskRegistry) -> None:
    runs: list[str] = []

    def tracked(label: str) -> bool:
        runs.append(label)
        return True

    tasks.register(tracked)
    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    {"name": "done", "task": "tracked", "params": {"label": "done"}},
                    {"name": "busy", "task": "tracked", "params": {"label": "busy"}},
                ],
            },
            {
                "type": "parallel",
                "tasks": [{"name": "last", "task": "tracked", "params": {"label": "last"}}],
            },
        ]
    }
    earlier = utcnow()
    before = RunStatus(
        phase=RunPhase.RUNNING,
        started_at=earlier,
        tasks={
            "done": TaskStatus(
                phase=TaskPhase.SUCCEEDED, attempts=1, started_at=earlier, finished_at=earlier
            ),
            "busy": TaskStatus(phase=TaskPhase.RUNNING, attempts=1, started_at=earlier),
            "last": TaskStatus(),
        },
    )
    status = await make_runner(body, tasks, status=before).run()
    assert status.phase is RunPhase.SUCCEEDED
    assert runs == ["busy", "last"]
    assert status.tasks["done"].attempts == 1
    assert status.tasks["busy"].attempts == 2
    assert status.tasks["busy"].started_at == earlier
    assert status.started_at == earlier


async def test_resume_of_a_finished_failure_skips_its_dependants(tasks: TaskRegistry) -> None:
    body = {
        "dag": [
            {"name": "a", "task": "task_a"},
            {"name": "b", "task": "task_b", "dependsOn": ["a"]},
        ]
    }
    before = RunStatus(
        phase=RunPhase.RUNNING,
        tasks={"a": TaskStatus(phase=TaskPhase.FAILED, attempts=1, message="x"), "b": TaskStatus()},
    )
    status = await make_runner(body, tasks, status=before).run()
    assert phases(status) == {"a": "Failed", "b": "Skipped"}


@pytest.mark.parametrize(
    ("returned", "phase", "message"),
    [
        (True, TaskPhase.SUCCEEDED, None),
        (None, TaskPhase.SUCCEEDED, None),
        (False, TaskPhase.FAILED, "task returned False"),
        ("yes", TaskPhase.FAILED, "task returned str; expected a bool or a dict"),
        ({"rows": 3}, TaskPhase.SUCCEEDED, None),
        ({"blob": "x" * 9000}, TaskPhase.FAILED, "outputs are 9011 bytes; at most 8192"),
    ],
)
async def test_return_values(
    tasks: TaskRegistry, run_body: RunBody, returned: Any, phase: TaskPhase, message: str | None
) -> None:
    tasks.register(lambda: returned, "returns")
    status = await run_body({"dag": [{"name": "r", "task": "returns"}]})
    assert status.tasks["r"].phase is phase
    assert status.tasks["r"].message == message
    if isinstance(returned, dict) and phase is TaskPhase.SUCCEEDED:
        assert status.tasks["r"].outputs == returned


async def test_every_transition_is_published_with_timestamps(run_body: RunBody) -> None:
    sink = RecordingSink()
    await run_body({"dag": [{"name": "a", "task": "task_a"}]}, sink)
    seen = [s.tasks["a"].phase for s, changed, _ in sink.published if "a" in changed]
    assert seen[0] is TaskPhase.PENDING
    assert seen[-1] is TaskPhase.SUCCEEDED
    assert TaskPhase.RUNNING in seen
    last, _, final = sink.published[-1]
    assert final
    assert last.finished_at is not None
    assert last.tasks["a"].finished_at is not None
    assert sum(1 for _, _, is_final in sink.published if is_final) == 1
    wire = last.to_json_dict()
    assert isinstance(wire["startedAt"], str)
    assert wire["startedAt"].endswith("Z")


async def test_coalescing_turns_a_burst_into_few_writes(tasks: TaskRegistry) -> None:
    inner = RecordingSink()
    sink = CoalescingSink(inner, interval=0.05)
    body = {"workflow": [{"type": "parallel", "tasks": ["noop"] * 500}]}
    final = await make_runner(body, tasks, sink).run()
    assert final.phase is RunPhase.SUCCEEDED
    assert inner.published[-1][2] is True
    assert len(inner.published) <= 3
    written = set().union(*(changed for _, changed, _ in inner.published))
    assert len(written) == 500
    assert inner.published[-1][0].task_phases() == final.task_phases()


async def test_a_failed_attempt_records_when_the_next_is_due(tasks: TaskRegistry) -> None:
    def flaky() -> bool:
        if not flaky_calls:
            flaky_calls.append(1)
            raise ConnectionError("down")
        return True

    flaky_calls: list[int] = []
    tasks.register(flaky)
    sink = RecordingSink()
    body = {"dag": [{"name": "f", "task": "flaky", "retries": 1, "retryBackoffSeconds": 0.05}]}
    final = await make_runner(body, tasks, sink).run()
    waiting = [s.tasks["f"] for s, _, _ in sink.published if s.tasks["f"].next_attempt_at]
    assert waiting, "the backoff was never published"
    assert waiting[0].attempts == 1
    assert waiting[0].next_attempt_at is not None
    assert waiting[0].next_attempt_at > (waiting[0].started_at or utcnow())
    assert final.tasks["f"].phase is TaskPhase.SUCCEEDED
    assert final.tasks["f"].next_attempt_at is None


async def test_a_run_resumed_in_a_backoff_waits_out_the_rest_and_counts_the_failure(
    tasks: TaskRegistry,
) -> None:
    """Finding 5 of issue 9: a kill during a retry's backoff granted an extra attempt at once."""
    calls: list[datetime] = []

    async def always_fails() -> bool:
        calls.append(utcnow())
        raise ConnectionError("down")

    tasks.register(always_fails)
    now = utcnow()
    due = now + timedelta(seconds=0.3)
    status = RunStatus(
        phase=RunPhase.RUNNING,
        started_at=now,
        tasks={
            "f": TaskStatus(
                phase=TaskPhase.RUNNING,
                attempts=1,
                started_at=now,
                next_attempt_at=due,
                message="attempt 1 failed: ConnectionError: down; retrying in 15s",
            )
        },
    )
    body = {"dag": [{"name": "f", "task": "always_fails", "retries": 1, "retryBackoffSeconds": 15}]}
    final = await make_runner(body, tasks, status=status).run()
    assert final.tasks["f"].phase is TaskPhase.FAILED
    assert final.tasks["f"].attempts == 2, "retries: 1 allows two attempts in all"
    assert len(calls) == 1
    assert calls[0] >= due, "the rest of the backoff was not waited out"
