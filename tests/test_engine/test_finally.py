"""`finally` tasks (Tekton's `finally`, Argo's `onExit`): they run once the main graph has
ended, whatever its outcome, read that outcome, and fail the run if they fail. On a
virtual clock (looptime): the tasks here are async, so timeouts are exact and instant."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stageflow.engine import RunPhase, SpecError, TaskPhase, TaskRegistry, WorkflowRequest
from stageflow.engine import compile_workflow as compile_plan
from tests.support.engine import RecordingSink, RunBody, make_runner

pytestmark = pytest.mark.looptime


@pytest.fixture
def noted(tasks: TaskRegistry) -> list[dict[str, Any]]:
    """A task `note` that records its params and the loop time it ran at."""
    calls: list[dict[str, Any]] = []

    async def note(**params: Any) -> dict[str, Any]:
        calls.append({**params, "at": asyncio.get_running_loop().time()})
        return {"noted": True}

    tasks.register(note, "note")
    return calls


NOTIFY = {
    "name": "notify",
    "task": "note",
    "params": {"phase": "{{ run.phase }}", "failed": "{{ run.failedTasks }}"},
}


async def test_they_run_after_a_success_and_read_its_outcome(
    run_body: RunBody, noted: list[dict[str, Any]]
) -> None:
    status = await run_body(
        {"workflow": [{"type": "sequential", "tasks": ["task_a", "task_b"]}], "finally": [NOTIFY]}
    )
    assert status.phase is RunPhase.SUCCEEDED
    assert status.main_phase is RunPhase.SUCCEEDED
    assert status.tasks["notify"].phase is TaskPhase.SUCCEEDED
    assert [(c["phase"], c["failed"]) for c in noted] == [("Succeeded", [])]
    assert status.tasks["notify"].started_at >= status.tasks["task_b"].finished_at  # type: ignore[operator]


async def test_they_run_after_a_failure_and_the_run_stays_failed(
    run_body: RunBody, noted: list[dict[str, Any]]
) -> None:
    body = {
        "dag": [
            {"name": "build", "task": "fail", "params": {"message": "compile error"}},
            {"name": "deploy", "task": "task_b", "dependsOn": ["build"]},
        ],
        "finally": [
            NOTIFY,
            {"name": "which", "task": "note", "params": {"build": "{{ tasks.build.phase }}"}},
        ],
    }
    status = await run_body(body)
    assert status.phase is RunPhase.FAILED
    assert status.message == "Task build failed: RuntimeError: compile error"
    assert status.tasks["deploy"].phase is TaskPhase.SKIPPED
    assert status.tasks["notify"].phase is TaskPhase.SUCCEEDED
    seen = [{key: value for key, value in call.items() if key != "at"} for call in noted]
    expected = [{"phase": "Failed", "failed": ["build"]}, {"build": "Failed"}]
    assert sorted(seen, key=str) == sorted(expected, key=str)


async def test_a_failing_finally_task_fails_a_run_that_succeeded(run_body: RunBody) -> None:
    body = {
        "workflow": [{"type": "parallel", "tasks": ["task_a"]}],
        "finally": [{"name": "cleanup", "task": "fail", "params": {"message": "bucket gone"}}],
    }
    status = await run_body(body)
    assert status.main_phase is RunPhase.SUCCEEDED
    assert status.phase is RunPhase.FAILED
    assert status.message == "Finally task cleanup failed: RuntimeError: bucket gone"


async def test_they_order_among_themselves_and_all_run_when_one_fails(
    run_body: RunBody, noted: list[dict[str, Any]]
) -> None:
    body = {
        "dag": [{"name": "main", "task": "task_a"}],
        "finally": [
            {"name": "first", "task": "fail"},
            {"name": "second", "task": "note", "params": {"n": 2}},
            {"name": "after_first", "task": "note", "dependsOn": ["first"]},
        ],
    }
    status = await run_body(body)
    assert status.task_phases() == {
        "main": "Succeeded",
        "first": "Failed",
        "second": "Succeeded",
        "after_first": "Skipped",
    }
    assert status.phase is RunPhase.FAILED


async def test_the_run_timeout_does_not_cut_them_short_their_own_budget_does(
    tasks: TaskRegistry, run_body: RunBody
) -> None:
    async def slow(seconds: float) -> bool:
        await asyncio.sleep(seconds)
        return True

    tasks.register(slow, "slow")
    body = {
        "timeoutSeconds": 60,
        "finallyTimeoutSeconds": 300,
        "dag": [{"name": "long", "task": "slow", "params": {"seconds": 3600}}],
        "finally": [
            {"name": "ok", "task": "slow", "params": {"seconds": 120}},
            {"name": "too_long", "task": "slow", "params": {"seconds": 1000}},
        ],
    }
    loop = asyncio.get_running_loop()
    started = loop.time()
    status = await run_body(body)
    assert round(loop.time() - started) == 60 + 300
    assert status.tasks["long"].message == "stopped: Run timed out after 60s"
    assert status.tasks["ok"].phase is TaskPhase.SUCCEEDED  # 120 s past the run's timeout
    assert status.tasks["too_long"].phase is TaskPhase.FAILED
    assert status.tasks["too_long"].message == "stopped: finally tasks timed out after 300s"
    assert status.phase is RunPhase.FAILED
    assert status.message == "Run timed out after 60s; finally tasks timed out after 300s"


async def test_a_cancel_runs_them_and_a_forced_one_does_not(
    tasks: TaskRegistry, noted: list[dict[str, Any]]
) -> None:
    body = {
        "dag": [{"name": "long", "task": "sleep", "params": {"seconds": 3600}}],
        "finally": [NOTIFY],
    }
    for force in (False, True):
        noted.clear()
        runner = make_runner(body, tasks)
        running = asyncio.create_task(runner.run())
        await asyncio.sleep(10)
        runner.cancel(force=force)
        status = await running
        assert status.phase is RunPhase.CANCELLED
        assert status.tasks["long"].phase is TaskPhase.CANCELLED
        if force:
            assert status.tasks["notify"].phase is TaskPhase.CANCELLED
            assert noted == []
        else:
            assert status.tasks["notify"].phase is TaskPhase.SUCCEEDED
            assert [c["phase"] for c in noted] == ["Cancelled"]


async def test_a_plain_cancel_while_they_run_leaves_them_be(tasks: TaskRegistry) -> None:
    body = {
        "dag": [{"name": "main", "task": "task_a"}],
        "finally": [{"name": "cleanup", "task": "sleep", "params": {"seconds": 100}}],
    }
    sink = RecordingSink()
    runner = make_runner(body, tasks, sink)
    running = asyncio.create_task(runner.run())
    await asyncio.sleep(10)
    assert runner.status.tasks["cleanup"].phase is TaskPhase.RUNNING
    runner.cancel()
    status = await running
    assert status.tasks["cleanup"].phase is TaskPhase.SUCCEEDED
    assert status.phase is RunPhase.SUCCEEDED


async def test_a_run_resumed_while_they_run_keeps_the_main_outcome(
    tasks: TaskRegistry, noted: list[dict[str, Any]]
) -> None:
    """An operator that dies during the finally tasks: the next one resumes them, with the
    main graph's outcome as it was, and never runs the main graph again."""
    body = {
        "dag": [{"name": "build", "task": "fail"}],
        "finally": [
            {"name": "cleanup", "task": "sleep", "params": {"seconds": 100}},
            NOTIFY,
        ],
    }
    sink = RecordingSink()
    first = make_runner(body, tasks, sink)
    running = asyncio.create_task(first.run())
    await asyncio.sleep(10)
    running.cancel()  # the host goes away
    with pytest.raises(asyncio.CancelledError):
        await running
    saved = sink.published[-1][0]
    assert saved.main_phase is RunPhase.FAILED
    assert saved.tasks["build"].attempts == 1
    status = await make_runner(body, tasks, RecordingSink(), status=saved).run()
    assert status.tasks["build"].attempts == 1
    assert status.tasks["cleanup"].phase is TaskPhase.SUCCEEDED
    assert status.phase is RunPhase.FAILED
    assert status.message == "Task build failed: RuntimeError: failed on purpose"
    assert [c["phase"] for c in noted] == ["Failed"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {
                "dag": [{"name": "a", "task": "task_a"}],
                "finally": [{"name": "n", "task": "task_b", "dependsOn": ["a"]}],
            },
            "Finally task n depends on a: finally tasks run after the whole main graph",
        ),
        (
            {
                "dag": [{"name": "a", "task": "task_a", "dependsOn": ["n"]}],
                "finally": [{"name": "n", "task": "task_b"}],
            },
            "Task a depends on finally task n",
        ),
        (
            {
                "dag": [{"name": "a", "task": "task_a"}],
                "finally": [
                    {"name": "x", "task": "task_b", "dependsOn": ["y"]},
                    {"name": "y", "task": "task_c", "dependsOn": ["x"]},
                ],
            },
            "Dependency cycle: ",
        ),
        (
            {"dag": [{"name": "a", "task": "echo", "params": {"p": "{{ run.phase }}"}}]},
            "{{ run.phase }} in task a: a run's outcome and tasks' phases are for finally tasks",
        ),
        (
            {
                "dag": [{"name": "a", "task": "task_a"}],
                "finally": [{"name": "n", "task": "echo", "params": {"p": "{{ run.status }}"}}],
            },
            "Unknown reference: {{ run.status }} in task n",
        ),
        (
            {
                "dag": [{"name": "a", "task": "task_a"}],
                "finally": [{"name": "a", "task": "task_b"}],
            },
            "Duplicate task name: a",
        ),
    ],
)
def test_bad_finally_tasks_are_refused_naming_the_problem(
    tasks: TaskRegistry, body: dict[str, Any], detail: str
) -> None:
    with pytest.raises(SpecError) as refused:
        compile_plan(WorkflowRequest.model_validate(body), registry=tasks)
    assert str(refused.value).startswith(detail)
