"""Retrying a finished run from its failure (engine/retry.py), then running it again: what
succeeded keeps its outputs and never runs again; the status keeps what happened."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from stageflow.engine import RunPhase, SpecError, TaskPhase, TaskRegistry, WorkflowRequest
from stageflow.engine import compile_workflow as compile_plan
from stageflow.engine.retry import NotRetryableError, retried_status
from tests.support.engine import make_runner

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


@pytest.fixture
def flaky(tasks: TaskRegistry) -> dict[str, Any]:
    """Tasks that count their runs; `gate` fails while `state["open"]` is false."""
    state: dict[str, Any] = {"open": False, "runs": {}}

    def counted(name: str) -> dict[str, int]:
        state["runs"][name] = state["runs"].get(name, 0) + 1
        return {"n": state["runs"][name]}

    def gate(name: str) -> dict[str, int]:
        counted(name)
        if not state["open"]:
            raise RuntimeError("closed")
        return {"n": state["runs"][name]}

    tasks.register(counted, "counted")
    tasks.register(gate, "gate")
    return state


def step(name: str, task: str = "counted", **extra: Any) -> dict[str, Any]:
    return {"name": name, "task": task, "params": {"name": name}, **extra}


SEQUENCE = {
    "workflow": [
        {
            "type": "sequential",
            "tasks": [step("one"), step("two"), step("three", "gate"), step("four")],
        }
    ]
}


async def run(body: dict[str, Any], tasks: TaskRegistry, status: Any = None) -> Any:
    return await make_runner(body, tasks, status=status).run()


def retry(body: dict[str, Any], tasks: TaskRegistry, status: Any, **options: Any) -> Any:
    plan = compile_plan(WorkflowRequest.model_validate(body), registry=tasks)
    return retried_status(plan, status, retry_id="r1", at=AT, by="ada", **options)


async def test_a_retry_re_runs_only_what_did_not_succeed(
    tasks: TaskRegistry, flaky: dict[str, Any]
) -> None:
    failed = await run(SEQUENCE, tasks)
    assert failed.phase is RunPhase.FAILED
    assert failed.task_phases() == {
        "one": "Succeeded",
        "two": "Succeeded",
        "three": "Failed",
        "four": "Skipped",
    }
    reset = retry(SEQUENCE, tasks, failed)
    assert reset.phase is RunPhase.PENDING
    assert reset.task_phases() == {
        "one": "Succeeded",
        "two": "Succeeded",
        "three": "Pending",
        "four": "Pending",
    }
    [record] = reset.retries
    assert (record.id, record.by, record.previous_phase) == ("r1", "ada", RunPhase.FAILED)
    assert record.reset == ["three", "four"]
    assert record.messages["three"] == "RuntimeError: closed"
    flaky["open"] = True
    done = await run(SEQUENCE, tasks, status=reset)
    assert done.phase is RunPhase.SUCCEEDED
    assert flaky["runs"] == {"one": 1, "two": 1, "three": 2, "four": 1}
    assert done.tasks["one"].outputs == {"n": 1}  # kept, not recomputed
    assert done.tasks["three"].attempts == 2  # counts on from the failed attempt
    assert done.retries == reset.retries


async def test_from_re_runs_a_task_and_all_after_it(
    tasks: TaskRegistry, flaky: dict[str, Any]
) -> None:
    flaky["open"] = True
    finished = await run(SEQUENCE, tasks)
    finished.phase = RunPhase.FAILED  # a run that failed later, say in a finally task
    reset = retry(SEQUENCE, tasks, finished, from_task="two")
    assert reset.retries[0].reset == ["two", "three", "four"]
    done = await run(SEQUENCE, tasks, status=reset)
    assert flaky["runs"] == {"one": 1, "two": 2, "three": 2, "four": 2}
    assert done.tasks["two"].outputs == {"n": 2}


async def test_a_for_each_re_runs_only_its_failed_instances(tasks: TaskRegistry) -> None:
    runs: dict[int, int] = {}
    broken = {2}

    def item(n: int) -> dict[str, int]:
        runs[n] = runs.get(n, 0) + 1
        if n in broken:
            raise RuntimeError(f"item {n}")
        return {"n": n}

    tasks.register(item, "item")
    body = {
        "failFast": False,
        "dag": [
            {"name": "each", "task": "item", "forEach": [1, 2, 3], "params": {"n": "{{ item }}"}}
        ],
    }
    failed = await run(body, tasks)
    assert failed.tasks["each"].message == "1 of 3 instances failed"
    reset = retry(body, tasks, failed)
    assert reset.tasks["each[0]"].phase is TaskPhase.SUCCEEDED
    assert reset.tasks["each[1]"].phase is TaskPhase.PENDING
    broken.clear()
    done = await run(body, tasks, status=reset)
    assert done.phase is RunPhase.SUCCEEDED
    assert runs == {1: 1, 2: 2, 3: 1}
    assert done.tasks["each"].outputs == [{"n": 1}, {"n": 2}, {"n": 3}]


async def test_finally_tasks_run_again_and_a_cancelled_run_can_be_retried(
    tasks: TaskRegistry, flaky: dict[str, Any]
) -> None:
    body = {**SEQUENCE, "finally": [step("cleanup")]}
    failed = await run(body, tasks)
    assert failed.main_phase is RunPhase.FAILED
    reset = retry(body, tasks, failed)
    assert "cleanup" in reset.retries[0].reset
    assert reset.main_phase is None
    flaky["open"] = True
    done = await run(body, tasks, status=reset)
    assert done.phase is RunPhase.SUCCEEDED
    assert flaky["runs"]["cleanup"] == 2
    cancelled = done.model_copy(deep=True)
    cancelled.phase = RunPhase.CANCELLED
    assert retry(body, tasks, cancelled).phase is RunPhase.PENDING


async def test_a_succeeded_or_running_run_is_not_retried_and_from_must_name_a_task(
    tasks: TaskRegistry, flaky: dict[str, Any]
) -> None:
    failed = await run(SEQUENCE, tasks)
    with pytest.raises(SpecError, match=r"^Unknown task: nine \(retry from\)$"):
        retry(SEQUENCE, tasks, failed, from_task="nine")
    for phase in (RunPhase.SUCCEEDED, RunPhase.RUNNING, RunPhase.PENDING):
        failed.phase = phase
        with pytest.raises(NotRetryableError, match=f"Run is {phase.value}: only a Failed"):
            retry(SEQUENCE, tasks, failed)


async def test_the_history_is_bounded(tasks: TaskRegistry, flaky: dict[str, Any]) -> None:
    status = await run(SEQUENCE, tasks)
    for _ in range(25):
        status = retry(SEQUENCE, tasks, status)
        status.phase = RunPhase.FAILED
    assert len(status.retries) == 20


async def test_a_run_that_timed_out_is_retried_with_its_timeout_from_the_retry(
    tasks: TaskRegistry, flaky: dict[str, Any]
) -> None:
    body = {**SEQUENCE, "timeoutSeconds": 60}
    failed = await run(body, tasks)
    failed.started_at = AT  # long ago: the timeout counts from the retry, not from here
    reset = retry(body, tasks, failed)
    assert reset.started_at is None
    flaky["open"] = True
    assert (await run(body, tasks, status=reset)).phase is RunPhase.SUCCEEDED


def test_a_retry_of_thousands_of_failed_instances_keeps_a_bounded_record(
    tasks: TaskRegistry,
) -> None:
    """Up to 20 retry records stay in the WorkflowRun: one keeps at most 100 of the reset
    tasks' messages (and names at most 100 tasks, counting the rest)."""
    from stageflow.models.status import RunStatus, TaskStatus

    body = {"failFast": False, "dag": [{"name": "big", "task": "noop", "forEach": {"count": 3000}}]}
    plan = compile_plan(WorkflowRequest.model_validate(body), registry=tasks)
    failed = TaskStatus(phase=TaskPhase.FAILED, attempts=1, message="boom")
    status = RunStatus(
        phase=RunPhase.FAILED,
        tasks={
            "big": TaskStatus(phase=TaskPhase.FAILED, message="1500 of 3000 instances failed"),
            **{
                f"big[{index}]": failed if index % 2 else TaskStatus(phase=TaskPhase.SUCCEEDED)
                for index in range(3000)
            },
        },
    )
    retried = retried_status(plan, status, retry_id="r1", at=datetime.now(UTC))
    (record,) = retried.retries or []
    assert record.reset == ["big"]  # declared tasks; its failed instances go with it
    assert record.reset_count is None
    assert len(record.messages) == 100
    assert sum(1 for task in retried.tasks.values() if task.phase is TaskPhase.PENDING) == 1501


def test_a_retry_of_more_than_100_tasks_names_100_and_counts_them_all(
    tasks: TaskRegistry,
) -> None:
    from stageflow.models.status import RunStatus, TaskStatus

    body = {
        "failFast": False,
        "dag": [{"name": f"t{index:03d}", "task": "noop"} for index in range(150)],
    }
    plan = compile_plan(WorkflowRequest.model_validate(body), registry=tasks)
    failed = TaskStatus(phase=TaskPhase.FAILED, attempts=1, message="boom")
    status = RunStatus(phase=RunPhase.FAILED, tasks=dict.fromkeys(plan.tasks, failed))
    (record,) = retried_status(plan, status, retry_id="r1", at=datetime.now(UTC)).retries or []
    assert record.reset_count == 150
    assert record.reset == [f"t{index:03d}" for index in range(100)]
