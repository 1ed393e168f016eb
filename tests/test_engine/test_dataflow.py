"""Data between tasks (design §3b): outputs, references, when, forEach, until."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stageflow.engine import (
    RunPhase,
    RunStatus,
    SpecError,
    TaskPhase,
    TaskRegistry,
    TaskStatus,
    WorkflowRequest,
    compile_workflow,
)
from tests.support.engine import RunBody, make_runner
from tests.support.overlap import all_overlap, intervals


def phases(status: RunStatus) -> dict[str, str]:
    return status.task_phases()


@pytest.fixture
def received(tasks: TaskRegistry) -> list[dict[str, Any]]:
    """`take` records the params it gets; `emit` returns what it is given as outputs."""
    seen: list[dict[str, Any]] = []

    def take(**params: Any) -> bool:
        seen.append(params)
        return True

    def emit(**params: Any) -> dict[str, Any]:
        return params

    tasks.register(take)
    tasks.register(emit)
    return seen


NOT_BEFORE = (
    "Task b refers to {{ tasks.a.outputs }}, which does not finish before b starts "
    "(refer to an earlier stage)"
)
TYPED = {"rows": 3, "ratio": 0.5, "ok": True, "tags": ["a", "b"], "meta": {"k": "v"}, "none": None}


@pytest.mark.parametrize("form", ["dag", "stages"])
async def test_outputs_reach_downstream_with_their_json_types(
    run_body: RunBody, received: list[dict[str, Any]], form: str
) -> None:
    producer = {"name": "produce", "task": "emit", "params": TYPED}
    consumer = {
        "name": "consume",
        "task": "take",
        "params": {
            "rows": "{{ tasks.produce.outputs.rows }}",
            "ratio": "{{ tasks.produce.outputs.ratio }}",
            "ok": "{{tasks.produce.outputs.ok}}",
            "tags": "{{ tasks.produce.outputs.tags }}",
            "first_tag": "{{ tasks.produce.outputs.tags.0 }}",
            "meta": "{{ tasks.produce.outputs.meta }}",
            "none": "{{ tasks.produce.outputs.none }}",
            "all": "{{ tasks.produce.outputs }}",
            "text": "{{ tasks.produce.outputs.rows }} rows, tags {{ tasks.produce.outputs.tags }}",
            "nested": {"deep": ["{{ tasks.produce.outputs.meta.k }}"]},
        },
    }
    if form == "dag":
        body: dict[str, Any] = {"dag": [consumer, producer]}  # the reference makes the dependency
    else:
        body = {
            "workflow": [
                {"type": "sequential", "tasks": [producer]},
                {"type": "parallel", "tasks": [consumer]},
            ]
        }
    status = await run_body(body)
    assert status.phase is RunPhase.SUCCEEDED
    assert received == [
        {
            "rows": 3,
            "ratio": 0.5,
            "ok": True,
            "tags": ["a", "b"],
            "first_tag": "a",
            "meta": {"k": "v"},
            "none": None,
            "all": TYPED,
            "text": '3 rows, tags ["a","b"]',
            "nested": {"deep": ["v"]},
        }
    ]
    assert status.tasks["produce"].outputs == TYPED


async def test_run_params(run_body: RunBody, received: list[dict[str, Any]]) -> None:
    body = {
        "params": {"threshold": 5, "region": "eu"},
        "dag": [
            {
                "name": "t",
                "task": "take",
                "params": {
                    "n": "{{ params.threshold }}",
                    "where": "in {{ params.region }}",
                    "all": "{{ params }}",
                },
            }
        ],
    }
    await run_body(body)
    assert received == [{"n": 5, "where": "in eu", "all": {"threshold": 5, "region": "eu"}}]


async def test_a_missing_output_key_fails_the_task_and_says_which(
    run_body: RunBody, received: list[dict[str, Any]]
) -> None:
    body = {
        "dag": [
            {"name": "p", "task": "emit", "params": {"a": 1}},
            {"name": "c", "task": "take", "params": {"x": "{{ tasks.p.outputs.b }}"}},
        ]
    }
    status = await run_body(body)
    assert status.tasks["c"].phase is TaskPhase.FAILED
    assert status.tasks["c"].message == "params: tasks.p.outputs has no 'b'"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {
                "dag": [
                    {"name": "c", "task": "take", "params": {"x": "{{ tasks.ghost.outputs.k }}"}}
                ]
            },
            "Unknown reference: {{ tasks.ghost.outputs.k }} in task c",
        ),
        (
            {"dag": [{"name": "c", "task": "take", "params": {"x": "{{ nonsense }}"}}]},
            "Unknown reference: {{ nonsense }} in task c",
        ),
        (
            {"dag": [{"name": "c", "task": "take", "params": {"x": "{{ params.nope }}"}}]},
            "Unknown run parameter: {{ params.nope }} in task c",
        ),
        (
            {"dag": [{"name": "c", "task": "emit", "params": {"x": "{{ tasks.c.outputs }}"}}]},
            "Task c refers to its own outputs: {{ tasks.c.outputs }}",
        ),
        (
            {
                "workflow": [
                    {
                        "type": "parallel",
                        "tasks": [
                            {"name": "a", "task": "emit"},
                            {"name": "b", "task": "take", "params": {"x": "{{ tasks.a.outputs }}"}},
                        ],
                    }
                ]
            },
            NOT_BEFORE,
        ),
        (
            {
                "workflow": [
                    {
                        "type": "sequential",
                        "tasks": [
                            {"name": "b", "task": "take", "params": {"x": "{{ tasks.a.outputs }}"}},
                            {"name": "a", "task": "emit"},
                        ],
                    }
                ]
            },
            NOT_BEFORE,
        ),
        (
            {"dag": [{"name": "c", "task": "take", "params": {"x": "{{ item }}"}}]},
            "{{ item }} in task c: {{ item }} is for the params of a forEach task",
        ),
        (
            {"dag": [{"name": "c", "task": "take", "params": {"x": "{{ iteration }}"}}]},
            "{{ iteration }} in task c, which has no until",
        ),
        (
            {"dag": [{"name": "c", "task": "take", "when": "{{ outputs.k }} > 1"}]},
            "{{ outputs.k }} in task c: {{ outputs }} is for until conditions",
        ),
        (
            {"dag": [{"name": "c", "task": "take", "when": "1 >"}]},
            "Task c: when is not a CEL expression: '1 >'",
        ),
        (
            {"dag": [{"name": "c", "task": "take", "forEach": "tasks.a.outputs"}]},
            "Task c: forEach takes a list, or one reference",
        ),
        (
            {"dag": [{"name": "c", "task": "take", "forEach": list(range(11))}]},
            "Task c: forEach has 11 items (at most 10, STAGEFLOW_MAX_FOREACH_ITEMS)",
        ),
        (
            {
                "dag": [
                    {"name": "a", "task": "emit", "params": {"x": "{{ tasks.b.outputs }}"}},
                    {"name": "b", "task": "emit", "params": {"x": "{{ tasks.a.outputs }}"}},
                ]
            },
            "Dependency cycle: ",
        ),
    ],
)
def test_bad_references_are_rejected_at_submission(
    tasks: TaskRegistry, received: list[dict[str, Any]], body: dict[str, Any], detail: str
) -> None:
    with pytest.raises(SpecError) as caught:
        compile_workflow(WorkflowRequest.model_validate(body), registry=tasks, max_items=10)
    assert str(caught.value).startswith(detail)


async def test_when_false_skips_and_counts_as_done(
    run_body: RunBody, received: list[dict[str, Any]]
) -> None:
    body = {
        "params": {"enabled": False},
        "dag": [
            {"name": "gate", "task": "emit", "params": {"rows": 0}},
            {
                "name": "heavy",
                "task": "take",
                "params": {"n": 1},
                "when": "{{ tasks.gate.outputs.rows }} > 0",
            },
            {
                "name": "optional",
                "task": "take",
                "params": {"n": 2},
                "when": "{{ params.enabled }}",
            },
            {
                "name": "after",
                "task": "take",
                "params": {"skipped_outputs": "{{ tasks.heavy.outputs }}"},
                "dependsOn": ["optional"],
            },
        ],
    }
    status = await run_body(body)
    assert status.phase is RunPhase.SUCCEEDED
    assert phases(status) == {
        "gate": "Succeeded",
        "heavy": "Skipped",
        "optional": "Skipped",
        "after": "Succeeded",
    }
    assert (
        status.tasks["heavy"].message
        == "when condition is false: {{ tasks.gate.outputs.rows }} > 0"
    )
    assert status.tasks["heavy"].when_result is False
    assert received == [{"skipped_outputs": None}]


async def test_a_skip_caused_by_failure_still_propagates(
    run_body: RunBody, received: list[dict[str, Any]]
) -> None:
    body = {
        "failFast": False,
        "dag": [
            {"name": "boom", "task": "fail"},
            {"name": "mid", "task": "take", "dependsOn": ["boom"]},
            {"name": "end", "task": "take", "dependsOn": ["mid"]},
        ],
    }
    status = await run_body(body)
    assert phases(status) == {"boom": "Failed", "mid": "Skipped", "end": "Skipped"}
    assert status.tasks["mid"].when_result is None


async def test_a_condition_that_cannot_be_evaluated_fails_the_task(
    run_body: RunBody, received: list[dict[str, Any]]
) -> None:
    body = {
        "dag": [
            {"name": "p", "task": "emit", "params": {"n": "three"}},
            {"name": "c", "task": "take", "when": "{{ tasks.p.outputs.n }} > 3"},
        ]
    }
    status = await run_body(body)
    assert status.tasks["c"].phase is TaskPhase.FAILED
    assert status.tasks["c"].message is not None
    assert status.tasks["c"].message.startswith(
        "when: '{{ tasks.p.outputs.n }} > 3' failed: found no matching overload"
    )


async def test_for_each_over_an_upstream_list_runs_instances_in_parallel(
    tasks: TaskRegistry, run_body: RunBody, received: list[dict[str, Any]]
) -> None:
    async def square(n: int) -> dict[str, int]:
        await asyncio.sleep(0.2)
        return {"n": n, "square": n * n}

    tasks.register(square)
    body = {
        "dag": [
            {"name": "list", "task": "emit", "params": {"numbers": [3, 1, 2]}},
            {
                "name": "sq",
                "task": "square",
                "forEach": "{{ tasks.list.outputs.numbers }}",
                "params": {"n": "{{ item }}"},
            },
            {
                "name": "sum",
                "task": "take",
                "params": {
                    "results": "{{ tasks.sq.outputs }}",
                    "second": "{{ tasks.sq.outputs.1.square }}",
                },
            },
        ]
    }
    status = await run_body(body)
    assert status.phase is RunPhase.SUCCEEDED
    assert phases(status) == {
        "list": "Succeeded",
        "sq": "Succeeded",
        "sum": "Succeeded",
        "sq[0]": "Succeeded",
        "sq[1]": "Succeeded",
        "sq[2]": "Succeeded",
    }
    assert all_overlap(intervals(status, "sq[0]", "sq[1]", "sq[2]"))
    assert received == [
        {
            "results": [{"n": 3, "square": 9}, {"n": 1, "square": 1}, {"n": 2, "square": 4}],
            "second": 1,
        }
    ]
    assert status.progress == "6/6"


async def test_for_each_over_a_literal_list_with_dict_items_and_parallelism(
    tasks: TaskRegistry, run_body: RunBody
) -> None:
    active = peak = 0

    async def visit(city: str) -> dict[str, str]:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return {"visited": city}

    tasks.register(visit)
    items = [{"city": c} for c in ("Oslo", "Lima", "Pune", "Kobe", "Graz")]
    body = {
        "parallelism": 2,
        "dag": [
            {"name": "v", "task": "visit", "forEach": items, "params": {"city": "{{ item.city }}"}}
        ],
    }
    status = await run_body(body)
    assert status.tasks["v"].outputs == [{"visited": c["city"]} for c in items]
    assert peak == 2


async def test_a_failing_instance_fails_the_fan_out(tasks: TaskRegistry, run_body: RunBody) -> None:
    def picky(n: int) -> bool:
        return n != 2

    tasks.register(picky)
    body = {
        "failFast": False,
        "dag": [
            {"name": "p", "task": "picky", "forEach": [1, 2, 3], "params": {"n": "{{ item }}"}},
            {"name": "after", "task": "task_c", "dependsOn": ["p"]},
        ],
    }
    status = await run_body(body)
    assert phases(status) == {
        "p": "Failed",
        "after": "Skipped",
        "p[0]": "Succeeded",
        "p[1]": "Failed",
        "p[2]": "Succeeded",
    }
    assert status.tasks["p"].message == "1 of 3 instances failed"


async def test_for_each_over_something_that_is_not_a_list(
    run_body: RunBody, received: list[dict[str, Any]]
) -> None:
    body = {
        "dag": [
            {"name": "p", "task": "emit", "params": {"n": 4}},
            {"name": "f", "task": "take", "forEach": "{{ tasks.p.outputs.n }}"},
        ]
    }
    status = await run_body(body)
    assert status.tasks["f"].phase is TaskPhase.FAILED
    assert status.tasks["f"].message == "forEach: {{ tasks.p.outputs.n }} is int, not a list"


async def test_until_repeats_with_the_iteration_and_records_it(
    tasks: TaskRegistry, run_body: RunBody
) -> None:
    def countdown(start: int, iteration: int) -> dict[str, int]:
        return {"left": start - 2 * iteration}

    tasks.register(countdown)
    body = {
        "params": {"floor": 3},
        "dag": [
            {
                "name": "c",
                "task": "countdown",
                "params": {"start": 10, "iteration": "{{ iteration }}"},
                "until": "{{ outputs.left }} <= {{ params.floor }}",
                "maxIterations": 10,
            },
            {"name": "after", "task": "echo", "params": {"left": "{{ tasks.c.outputs.left }}"}},
        ],
    }
    status = await run_body(body)
    assert status.phase is RunPhase.SUCCEEDED
    assert status.tasks["c"].iterations == 5  # left: 10, 8, 6, 4, 2
    assert status.tasks["c"].outputs == {"left": 2}
    assert status.tasks["after"].outputs == {"left": 2}


async def test_until_gives_up_after_max_iterations(tasks: TaskRegistry, run_body: RunBody) -> None:
    tasks.register(lambda: {"done": False}, "never")
    body = {
        "dag": [{"name": "n", "task": "never", "until": "{{ outputs.done }}", "maxIterations": 3}]
    }
    status = await run_body(body)
    assert status.tasks["n"].phase is TaskPhase.FAILED
    assert status.tasks["n"].iterations == 3
    assert status.tasks["n"].attempts == 3
    assert status.tasks["n"].message == "until condition still false after 3 iterations"


async def test_a_run_s_outputs_are_bounded(tasks: TaskRegistry) -> None:
    tasks.register(lambda: {"blob": "x" * 5000}, "big")
    body = {
        "workflow": [
            {"type": "sequential", "tasks": [{"name": f"b{i}", "task": "big"} for i in range(3)]}
        ]
    }
    plan = compile_workflow(
        WorkflowRequest.model_validate(body), registry=tasks, max_output_bytes=12_000
    )
    from stageflow.engine import Executor, InProcessExecutor, WorkflowRunner
    from tests.support.engine import RecordingSink

    status = await WorkflowRunner(
        plan, executors={Executor.INPROCESS: InProcessExecutor(tasks)}, sink=RecordingSink()
    ).run()
    assert phases(status) == {"b0": "Succeeded", "b1": "Succeeded", "b2": "Failed"}
    assert status.tasks["b2"].message == "the run's outputs would exceed 11 KiB"


async def test_resume_keeps_outputs_and_finished_instances(
    tasks: TaskRegistry, received: list[dict[str, Any]]
) -> None:
    calls: list[int] = []

    def double(n: int) -> dict[str, int]:
        calls.append(n)
        return {"double": 2 * n}

    tasks.register(double)
    body = {
        "dag": [
            {"name": "src", "task": "emit", "params": {"ns": [1, 2, 3]}},
            {
                "name": "d",
                "task": "double",
                "forEach": "{{ tasks.src.outputs.ns }}",
                "params": {"n": "{{ item }}"},
            },
            {"name": "out", "task": "take", "params": {"all": "{{ tasks.d.outputs }}"}},
        ]
    }
    before = RunStatus(
        phase=RunPhase.RUNNING,
        tasks={
            "src": TaskStatus(phase=TaskPhase.SUCCEEDED, attempts=1, outputs={"ns": [1, 2, 3]}),
            "d": TaskStatus(phase=TaskPhase.RUNNING, attempts=0),
            "out": TaskStatus(),
            "d[0]": TaskStatus(phase=TaskPhase.SUCCEEDED, attempts=1, outputs={"double": 2}),
            "d[1]": TaskStatus(phase=TaskPhase.RUNNING, attempts=1),
            "d[2]": TaskStatus(),
        },
    )
    status = await make_runner(body, tasks, status=before).run()
    assert status.phase is RunPhase.SUCCEEDED
    assert sorted(calls) == [2, 3]  # src and d[0] did not run again
    assert status.tasks["d[1]"].attempts == 2
    assert received == [{"all": [{"double": 2}, {"double": 4}, {"double": 6}]}]


async def test_an_until_loop_is_charged_only_for_the_outputs_it_keeps(tasks: TaskRegistry) -> None:
    tasks.register(lambda iteration: {"i": iteration, "pad": "x" * 3000}, "padded")
    body = {
        "dag": [
            {
                "name": "loop",
                "task": "padded",
                "params": {"iteration": "{{ iteration }}"},
                "until": "{{ outputs.i }} >= 5",
                "maxIterations": 10,
            }
        ]
    }
    plan = compile_workflow(
        WorkflowRequest.model_validate(body), registry=tasks, max_output_bytes=4096
    )
    from stageflow.engine import Executor, InProcessExecutor, WorkflowRunner
    from tests.support.engine import RecordingSink

    runner = WorkflowRunner(
        plan, executors={Executor.INPROCESS: InProcessExecutor(tasks)}, sink=RecordingSink()
    )
    status = await runner.run()
    assert status.tasks["loop"].phase is TaskPhase.SUCCEEDED  # 6 x 3 KB produced, 3 KB kept
    assert status.tasks["loop"].iterations == 6
