"""Approval tasks: Waiting until a person decides (or the time runs out); what they supply
feeds the tasks after. On a virtual clock (looptime)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stageflow.engine import RunPhase, SpecError, TaskPhase, TaskRegistry, WorkflowRequest
from stageflow.engine import compile_workflow as compile_plan
from stageflow.engine.approval import ApprovalInputError, check_outputs
from stageflow.models.status import Decision, utcnow
from tests.support.engine import RecordingSink, make_runner
from tests.support.polling import eventually

pytestmark = pytest.mark.looptime

GATE = {
    "name": "approve-deploy",
    "approval": {
        "timeoutSeconds": 3600,
        "inputs": {
            "type": "object",
            "properties": {"version": {"type": "string"}},
            "required": ["version"],
        },
    },
}
BODY = {
    "workflow": [
        {
            "type": "sequential",
            "tasks": [
                "task_a",
                GATE,
                {
                    "name": "deploy",
                    "task": "echo",
                    "params": {"version": "{{ tasks.approve-deploy.outputs.version }}"},
                },
            ],
        }
    ]
}


def approved(**outputs: Any) -> Decision:
    return Decision(approved=True, by="ada", at=utcnow(), comment="ship it", outputs=outputs)


async def waiting(runner: Any) -> None:
    async def probe() -> bool:
        return bool(runner.status.tasks["approve-deploy"].phase is TaskPhase.WAITING)

    await eventually(probe, within=60)


async def test_it_waits_and_an_approval_feeds_the_tasks_after(tasks: TaskRegistry) -> None:
    runner = make_runner(BODY, tasks)
    running = asyncio.create_task(runner.run())
    await waiting(runner)
    await asyncio.sleep(600)
    assert runner.status.tasks["deploy"].phase is TaskPhase.PENDING  # nothing downstream
    assert runner.status.phase is RunPhase.RUNNING
    assert runner.decide("approve-deploy", approved(version="1.4.2"))
    assert not runner.decide("approve-deploy", approved(version="9"))  # the first stands
    status = await running
    assert status.phase is RunPhase.SUCCEEDED
    gate = status.tasks["approve-deploy"]
    assert gate.message == "approved by ada: ship it"
    assert gate.decision is not None
    assert gate.decision.by == "ada"
    assert status.tasks["deploy"].outputs == {"version": "1.4.2"}


async def test_a_rejection_fails_it_and_skips_what_follows(tasks: TaskRegistry) -> None:
    runner = make_runner(BODY, tasks)
    running = asyncio.create_task(runner.run())
    await waiting(runner)
    runner.decide("approve-deploy", Decision(approved=False, by="bo", at=utcnow(), comment="no"))
    status = await running
    assert status.phase is RunPhase.FAILED
    assert status.tasks["approve-deploy"].message == "rejected by bo: no"
    assert status.tasks["deploy"].phase is TaskPhase.SKIPPED


@pytest.mark.parametrize(("on_timeout", "phase"), [("reject", "Failed"), ("approve", "Succeeded")])
async def test_a_wait_that_runs_out_is_decided_by_on_timeout(
    tasks: TaskRegistry, on_timeout: str, phase: str
) -> None:
    gate = {"name": "gate", "approval": {"timeoutSeconds": 3600, "onTimeout": on_timeout}}
    loop = asyncio.get_running_loop()
    begin = loop.time()
    status = await make_runner({"dag": [gate]}, tasks).run()
    assert round(loop.time() - begin) == 3600
    assert status.tasks["gate"].phase.value == phase
    assert status.tasks["gate"].message == (
        f"{'approved' if on_timeout == 'approve' else 'rejected'}: "
        f"no decision within 3600s (onTimeout: {on_timeout})"
    )


async def test_a_decision_made_before_a_restart_is_applied_on_resume(
    tasks: TaskRegistry,
) -> None:
    sink = RecordingSink()
    first = make_runner(BODY, tasks, sink)
    running = asyncio.create_task(first.run())
    await waiting(first)
    await asyncio.sleep(60)
    running.cancel()  # the host goes away while it waits
    with pytest.raises(asyncio.CancelledError):
        await running
    saved = sink.published[-1][0]
    assert saved.tasks["approve-deploy"].phase is TaskPhase.WAITING
    second = make_runner(BODY, tasks, status=saved)
    second.decide("approve-deploy", approved(version="2.0"))  # before it waits again
    status = await second.run()
    assert status.tasks["deploy"].outputs == {"version": "2.0"}
    assert status.tasks["task_a"].attempts == 1


async def test_a_cancel_ends_the_wait(tasks: TaskRegistry) -> None:
    runner = make_runner(BODY, tasks)
    running = asyncio.create_task(runner.run())
    await waiting(runner)
    runner.cancel()
    status = await running
    assert status.tasks["approve-deploy"].phase is TaskPhase.CANCELLED
    assert status.phase is RunPhase.CANCELLED


def test_outputs_are_checked_against_inputs(tasks: TaskRegistry) -> None:
    plan = compile_plan(WorkflowRequest.model_validate(BODY), registry=tasks)
    spec = plan.tasks["approve-deploy"].spec.approval
    assert spec is not None
    check_outputs("approve-deploy", spec, {"version": "1"})
    with pytest.raises(ApprovalInputError, match="outputs: 'version' is a required property"):
        check_outputs("approve-deploy", spec, {})
    with pytest.raises(ApprovalInputError, match="version: 3 is not of type 'string'"):
        check_outputs("approve-deploy", spec, {"version": 3})


@pytest.mark.parametrize(
    ("task", "detail"),
    [
        (
            {"name": "g", "approval": {"inputs": {"type": "nope"}}},
            "Task g: approval inputs is not a JSON Schema",
        ),
    ],
)
def test_bad_approval_tasks_are_refused(
    tasks: TaskRegistry, task: dict[str, Any], detail: str
) -> None:
    with pytest.raises(SpecError, match=detail):
        compile_plan(WorkflowRequest.model_validate({"dag": [task]}), registry=tasks)


def test_an_approval_task_runs_nothing_and_is_named() -> None:
    with pytest.raises(ValueError, match="an approval task runs nothing"):
        WorkflowRequest.model_validate({"dag": [{"name": "g", "task": "task_a", "approval": {}}]})
    with pytest.raises(ValueError, match="an approval task needs a `name`"):
        WorkflowRequest.model_validate({"dag": [{"approval": {}}]})
