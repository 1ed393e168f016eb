"""Issue 10, the engine's part: no request can make the engine burn the event loop.

Each test here failed before its fix: the `{{ }}` regex backtracked for minutes,
CEL ran on the loop with no bound, deep parentheses raised RecursionError inside
the runner, references rendered without a size bound, forEach multiplied tasks.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from stageflow.engine import (
    Executor,
    InProcessExecutor,
    RunPhase,
    SpecError,
    TaskPhase,
    TaskRegistry,
    WorkflowRequest,
    WorkflowRunner,
    compile_workflow,
)
from stageflow.engine.conditions import Condition, ConditionError, CostLimit
from stageflow.engine.templates import TemplateError, _scan, references, render
from tests.support.engine import RecordingSink, RunBody

# The regex the parser replaced; kept here only as the reference semantics to compare with.
OLD = re.compile(r"\{\{\s*((?:(?!\{\{|\}\}).)*?)\s*\}\}")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        "{{" + " " * 20_000,  # took minutes: the regex backtracked over every space
        "{{" * 20_000 + "}}",
        "{{ a" + " }" * 20_000,
        ("{{" + " " * 50 + "\n") * 2_000,
    ],
)
def test_scanning_a_hostile_string_is_linear(text: str) -> None:
    try:
        found = list(references({"p": text}))
    except TemplateError:
        found = []
    assert len(found) <= 1


@pytest.mark.parametrize(
    "text",
    [
        "{{ params.a }}",
        " {{params.a}} ",
        "x {{ params.a }} y {{ item.k }} z",
        "{{{ params.a }}}",
        "{{ params.a {{ params.b }}",
        "{{\n params.a \n}}",
        "{{ params.\na }} {{ params.b }}",
        "}} {{ params.a }} {{",
        "{{}}",
    ],
)
def test_the_parser_finds_what_the_old_regex_found(text: str) -> None:
    expected = [(match.start(), match.end(), match[1]) for match in OLD.finditer(text)]
    assert [(match.start, match.end, match.inner) for match in _scan(text)] == expected


def test_rendering_is_bounded_in_size() -> None:
    big = "x" * 10_000
    params = {"p": " ".join(["{{ params.big }}"] * 1_000)}  # ~11 KB that would render to 10 MB
    with pytest.raises(TemplateError, match="rendered params exceed 100000 bytes"):
        render(params, lambda _: big, max_bytes=100_000)
    whole = {"p": ["{{ params.big }}"] * 1_000}  # whole-value references count too
    with pytest.raises(TemplateError, match="rendered params exceed"):
        render(whole, lambda _: big, max_bytes=100_000)
    assert render({"p": "{{ params.big }}"}, lambda _: big, max_bytes=100_000) == {"p": big}


async def test_render_overflow_fails_the_task_and_says_why(
    tasks: TaskRegistry, run_body: RunBody
) -> None:
    body = {
        "params": {"big": "x" * 4_000},
        "dag": [{"name": "e", "task": "echo", "params": {"v": "{{ params.big }}" * 100}}],
    }
    status = await run_body(body)
    assert status.tasks["e"].phase is TaskPhase.FAILED
    assert "rendered params exceed 262144 bytes" in (status.tasks["e"].message or "")


NESTED_ALL = "{{ params.l }}.all(a, {{ params.l }}.all(b, {{ params.l }}.all(c, a + b + c >= 0)))"


def test_a_costly_condition_is_stopped_by_its_step_budget() -> None:
    condition = Condition(NESTED_ALL, limit=CostLimit(max_steps=5_000, max_seconds=60))
    with pytest.raises(ConditionError, match="stopped: it took more than 5000 evaluation steps"):
        condition.evaluate(lambda _: list(range(100)))


def test_a_costly_condition_is_stopped_by_its_deadline() -> None:
    condition = Condition(NESTED_ALL, limit=CostLimit(max_steps=10**9, max_seconds=0.05))
    with pytest.raises(ConditionError, match=r"stopped: it took longer than 0.05s"):
        condition.evaluate(lambda _: list(range(100)))


async def test_conditions_are_evaluated_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, tasks: TaskRegistry, run_body: RunBody
) -> None:
    threads: list[int] = []
    run = Condition.run

    def recording(self: Condition, bound: Any) -> bool:
        threads.append(threading.get_ident())
        return run(self, bound)

    monkeypatch.setattr(Condition, "run", recording)
    status = await run_body({"dag": [{"name": "a", "task": "noop", "when": "1 < 2"}]})
    assert status.tasks["a"].phase is TaskPhase.SUCCEEDED
    assert threads
    assert threading.get_ident() not in threads


async def test_a_costly_when_fails_its_task_cleanly(tasks: TaskRegistry, run_body: RunBody) -> None:
    body = {"params": {"l": list(range(100))}, "dag": [{"name": "a", "task": "noop"}]}
    body["dag"][0]["when"] = NESTED_ALL  # type: ignore[index]
    status = await run_body(body)
    assert status.tasks["a"].phase is TaskPhase.FAILED
    assert "stopped: it took more than 20000 evaluation steps" in (status.tasks["a"].message or "")


def test_deeply_nested_parentheses_are_refused_at_submission(tasks: TaskRegistry) -> None:
    source = "(" * 200 + "true" + ")" * 200
    request = WorkflowRequest.model_validate(
        {"dag": [{"name": "a", "task": "noop", "when": source}]}
    )
    with pytest.raises(SpecError, match=r"Task a: when is .* is nested too deeply"):
        compile_workflow(request, registry=tasks)


def test_recursion_during_evaluation_is_a_clean_condition_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("stageflow.engine.conditions.MAX_TREE_DEPTH", 10**6)
    unbounded = CostLimit(max_steps=10**9, max_seconds=600)  # only the recursion can stop it
    condition = Condition("(" * 200 + "true" + ")" * 200, limit=unbounded)
    with pytest.raises(ConditionError, match="nested too deeply"):
        condition.evaluate(lambda _: None)


def test_task_instances_are_bounded_at_submission(tasks: TaskRegistry) -> None:
    dag = [{"name": f"t{i}", "task": "noop", "forEach": list(range(1000))} for i in range(13)]
    request = WorkflowRequest.model_validate({"dag": dag})
    with pytest.raises(
        SpecError,
        match=r"Too many task instances: 13013 .*"
        r"at most 12000 per run, STAGEFLOW_MAX_TASK_INSTANCES",
    ):
        compile_workflow(request, registry=tasks)
    compile_workflow(request, registry=tasks, max_instances=13013)


async def test_task_instances_are_bounded_when_a_fan_out_resolves(
    tasks: TaskRegistry, run_body: RunBody
) -> None:
    body = {
        "params": {"items": list(range(1000))},
        "dag": [
            {"name": f"f{i}", "task": "noop", "forEach": "{{ params.items }}"} for i in range(3)
        ],
        "parallelism": 1,
    }
    plan = compile_workflow(
        WorkflowRequest.model_validate(body), registry=tasks, max_instances=2000
    )
    runner = WorkflowRunner(
        plan, executors={Executor.INPROCESS: InProcessExecutor(tasks)}, sink=RecordingSink()
    )
    status = await runner.run()
    failed = [tid for tid, task in status.tasks.items() if task.phase is TaskPhase.FAILED]
    assert len(status.tasks) <= 2000
    assert failed
    assert "task instances (at most 2000 per run, STAGEFLOW_MAX_TASK_INSTANCES)" in (
        status.tasks[failed[0]].message or ""
    )


@pytest.mark.parametrize(
    ("task", "message"),
    [
        (
            {"task": "sleep", "params": {"secs": 1}},
            "Task t (task sleep): unknown param 'secs' (it takes: seconds)",
        ),
        (
            {"task": "sleep", "params": {"seconds": "soon"}},
            "Task t (task sleep): param 'seconds': Input should be a valid number",
        ),
        (
            {"task": "http_get", "params": {}},
            "Task t (task http_get): missing param 'url'",
        ),
        (
            {"task": "http_get", "params": {"url": "http://x.test", "expect_status": "200"}},
            "Task t (task http_get): param 'expect_status': Input should be a valid integer",
        ),
        (
            {"task": "task_a", "params": {"x": 1}},
            "Task t (task task_a): unknown param 'x' (it takes: no params)",
        ),
    ],
)
def test_params_are_checked_against_the_signature_at_submission(
    tasks: TaskRegistry, task: dict[str, Any], message: str
) -> None:
    request = WorkflowRequest.model_validate({"dag": [{"name": "t", **task}]})
    with pytest.raises(SpecError) as error:
        compile_workflow(request, registry=tasks)
    assert str(error.value) == message


def test_params_that_fit_or_are_references_pass(tasks: TaskRegistry) -> None:
    request = WorkflowRequest.model_validate(
        {
            "params": {"s": 1},
            "dag": [
                {"name": "a", "task": "sleep", "params": {"seconds": 0}},  # an int is a float
                {"name": "b", "task": "sleep", "params": {"seconds": "{{ params.s }}"}},
                {"name": "c", "task": "echo", "params": {"anything": [1, {"x": None}]}},
                {
                    "name": "d",
                    "task": "sleep",
                    "forEach": [1, 2],
                    "params": {"seconds": "{{ item }}"},
                },
            ],
        }
    )
    assert set(compile_workflow(request, registry=tasks).tasks) == {"a", "b", "c", "d"}


async def test_the_outputs_budget_counts_the_ids_they_are_kept_under(tasks: TaskRegistry) -> None:
    """A folded group keeps its members' outputs by id: ten thousand tiny outputs cost
    their ids too, so the budget counts them (here 100 outputs of 7 bytes: 700 bytes of
    JSON, but about 2,500 as stored)."""
    body = {"dag": [{"name": "big", "task": "echo", "params": {"k": 1}, "forEach": {"count": 100}}]}
    plan = compile_workflow(
        WorkflowRequest.model_validate(body), registry=tasks, max_output_bytes=2048
    )
    runner = WorkflowRunner(
        plan, executors={Executor.INPROCESS: InProcessExecutor(tasks)}, sink=RecordingSink()
    )
    status = await runner.run()
    assert status.phase is RunPhase.FAILED
    failed = [task for task in status.tasks.values() if task.phase is TaskPhase.FAILED]
    assert any(task.message == "the run's outputs would exceed 2 KiB" for task in failed)
