"""`continueOn: {failed: true}`: a task that may fail without stopping or failing the run
(Argo's `continueOn`, Tekton's `onError: continue`)."""

from __future__ import annotations

import pytest

from stageflow.engine import RunPhase, TaskPhase, TaskRegistry, WorkflowRequest, compile_workflow
from tests.support.engine import RunBody

FLAKY = {
    "name": "flaky",
    "task": "fail",
    "params": {"message": "boom"},
    "continueOn": {"failed": True},
}


async def test_in_a_sequence_the_next_task_runs_and_the_run_succeeds(run_body: RunBody) -> None:
    status = await run_body(
        {"workflow": [{"type": "sequential", "tasks": ["task_a", FLAKY, "task_b"]}]}
    )
    assert status.task_phases() == {"task_a": "Succeeded", "flaky": "Failed", "task_b": "Succeeded"}
    assert status.tasks["flaky"].message == "RuntimeError: boom"
    assert status.phase is RunPhase.SUCCEEDED
    assert status.tolerated_failures == ["flaky"]
    assert status.message == (
        "Succeeded past a tolerated failure: task flaky failed: RuntimeError: boom"
    )


async def test_without_it_the_same_failure_fails_the_run(run_body: RunBody) -> None:
    plain = {key: value for key, value in FLAKY.items() if key != "continueOn"}
    status = await run_body(
        {"workflow": [{"type": "sequential", "tasks": ["task_a", plain, "task_b"]}]}
    )
    assert status.task_phases() == {"task_a": "Succeeded", "flaky": "Failed", "task_b": "Skipped"}
    assert status.phase is RunPhase.FAILED
    assert status.tolerated_failures is None


async def test_its_retries_come_first_and_fail_fast_is_not_triggered(run_body: RunBody) -> None:
    body = {
        "dag": [
            {**FLAKY, "retries": 2, "retryBackoffSeconds": 0},
            {"name": "slow", "task": "sleep", "params": {"seconds": 0.05}},
            {"name": "after", "task": "task_c", "dependsOn": ["slow"]},
        ]
    }
    status = await run_body(body)
    assert status.tasks["flaky"].attempts == 3
    assert status.task_phases() == {"flaky": "Failed", "slow": "Succeeded", "after": "Succeeded"}
    assert status.phase is RunPhase.SUCCEEDED


async def test_a_reference_to_its_outputs_is_null(tasks: TaskRegistry, run_body: RunBody) -> None:
    seen: list[object] = []

    def record(value: object = "unset") -> bool:
        seen.append(value)
        return True

    tasks.register(record, "record")
    body = {
        "dag": [
            FLAKY,
            {
                "name": "reader",
                "task": "record",
                "dependsOn": ["flaky"],
                "params": {"value": "{{ tasks.flaky.outputs.n }}"},
            },
        ]
    }
    status = await run_body(body)
    assert status.tasks["reader"].phase is TaskPhase.SUCCEEDED
    assert seen == [None]


async def test_another_failure_still_fails_the_run_and_both_are_shown(run_body: RunBody) -> None:
    body = {
        "failFast": False,
        "dag": [FLAKY, {"name": "bad", "task": "fail", "params": {"message": "disk full"}}],
    }
    status = await run_body(body)
    assert status.phase is RunPhase.FAILED
    assert status.message == "Task bad failed: RuntimeError: disk full"
    assert status.tolerated_failures == ["flaky"]


async def test_a_for_each_task_tolerates_its_failed_instances(run_body: RunBody) -> None:
    body = {
        "workflow": [
            {
                "type": "sequential",
                "tasks": [
                    {
                        "name": "each",
                        "task": "fail",
                        "forEach": [1, 2],
                        "continueOn": {"failed": True},
                    },
                    "task_a",
                ],
            }
        ]
    }
    status = await run_body(body)
    assert status.tasks["each[0]"].phase is TaskPhase.FAILED
    assert status.tasks["each"].phase is TaskPhase.FAILED
    assert status.tasks["task_a"].phase is TaskPhase.SUCCEEDED
    assert status.phase is RunPhase.SUCCEEDED
    assert status.tolerated_failures == ["each"]


def test_continue_on_takes_only_known_outcomes(tasks: TaskRegistry) -> None:
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        WorkflowRequest.model_validate(
            {"dag": [{"name": "x", "task": "fail", "continueOn": {"error": True}}]}
        )
    request = WorkflowRequest.model_validate({"dag": [FLAKY]})
    assert compile_workflow(request, registry=tasks).tasks["flaky"].spec.tolerates_failure
