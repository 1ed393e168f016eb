"""Validation and normalisation: every rejected request names its problem."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from stageflow.engine import Executor, SpecError, TaskRegistry, WorkflowRequest, compile_workflow
from stageflow.engine.policy import TaskPolicy

SEED: dict[str, Any] = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
}


def compile_body(body: dict[str, Any], tasks: TaskRegistry, **limits: Any) -> dict[str, Any]:
    plan = compile_workflow(WorkflowRequest.model_validate(body), registry=tasks, **limits)
    return {task_id: node.depends_on for task_id, node in plan.tasks.items()}


def test_seed_stages_become_a_dag(tasks: TaskRegistry) -> None:
    assert compile_body(SEED, tasks) == {
        "task_a": (),
        "task_b": (),
        "task_c": ("task_a", "task_b"),
    }


def test_sequential_stage_chains_and_next_stage_waits_for_its_last(tasks: TaskRegistry) -> None:
    body = {
        "workflow": [
            {"type": "sequential", "tasks": ["task_a", "task_b", "task_c"]},
            {"type": "parallel", "tasks": ["task_d", "echo"]},
        ]
    }
    assert compile_body(body, tasks) == {
        "task_a": (),
        "task_b": ("task_a",),
        "task_c": ("task_b",),
        "task_d": ("task_c",),
        "echo": ("task_c",),
    }


def test_repeated_bare_names_get_free_suffixes(tasks: TaskRegistry) -> None:
    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": ["task_a", "task_a", {"name": "task_a-2", "task": "echo"}],
            },
        ]
    }
    assert list(compile_body(body, tasks)) == ["task_a", "task_a-3", "task_a-2"]


def test_normalised_spec_compiles_to_the_same_plan(tasks: TaskRegistry) -> None:
    body = {"workflow": [{"type": "parallel", "tasks": ["task_a", "task_a"]}]}
    plan = compile_workflow(WorkflowRequest.model_validate(body), registry=tasks)
    again = compile_workflow(plan.spec, registry=tasks)
    assert list(again.tasks) == list(plan.tasks) == ["task_a", "task_a-2"]
    assert again.spec == plan.spec


def test_dag_form(tasks: TaskRegistry) -> None:
    body = {
        "dag": [
            {"name": "c", "task": "task_c", "dependsOn": ["a", "b"]},
            {"name": "a", "task": "task_a"},
            {"name": "b", "task": "task_b", "dependsOn": ["a"]},
        ]
    }
    assert compile_body(body, tasks) == {"c": ("a", "b"), "a": (), "b": ("a",)}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"workflow": [{"type": "parallel", "tasks": ["task_a", "task_x"]}]},
            "Unknown task: task_x",
        ),
        ({"dag": [{"name": "a", "task": "nope"}]}, "Unknown task: nope"),
        (
            {"dag": [{"name": "a", "task": "task_a"}, {"name": "a", "task": "task_b"}]},
            "Duplicate task name: a",
        ),
        (
            {"dag": [{"name": "a", "task": "task_a", "dependsOn": ["ghost"]}]},
            "Unknown dependency: a depends on ghost",
        ),
        (
            {
                "dag": [
                    {"name": "a", "task": "task_a", "dependsOn": ["b"]},
                    {"name": "b", "task": "task_b", "dependsOn": ["a"]},
                ]
            },
            "Dependency cycle: ",
        ),
        (
            {"dag": [{"name": "a", "task": "task_a", "dependsOn": ["a"]}]},
            "Dependency cycle: a -> a",
        ),
        (
            {"dag": [{"name": "a", "image": "busybox", "executor": "inprocess"}]},
            "Task a: a task with an `image` runs as a Job",
        ),
    ],
)
def test_rejections_name_the_problem(
    tasks: TaskRegistry, body: dict[str, Any], detail: str
) -> None:
    with pytest.raises(SpecError) as caught:
        compile_body(body, tasks)
    assert str(caught.value).startswith(detail)


def test_too_many_tasks(tasks: TaskRegistry) -> None:
    body = {"workflow": [{"type": "parallel", "tasks": ["noop"] * 11}]}
    with pytest.raises(
        SpecError, match=r"Too many tasks: 11 \(at most 10 per run, STAGEFLOW_MAX_TASKS\)"
    ):
        compile_body(body, tasks, max_tasks=10)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"workflow": SEED["workflow"], "dag": [{"name": "a", "task": "task_a"}]},
        {"workflow": []},
        {"workflow": [{"type": "diagonal", "tasks": ["task_a"]}]},
        {"workflow": [{"type": "parallel", "tasks": []}]},
        {
            "workflow": [
                {"type": "parallel", "tasks": [{"name": "a", "task": "task_a", "dependsOn": []}]}
            ]
        },
        {"dag": [{"name": "a"}]},
        {"dag": [{"name": "bad name!", "task": "task_a"}]},
        {"dag": [{"name": "a", "task": "task_a", "retries": -1}]},
        {"workflow": SEED["workflow"], "surprise": True},
    ],
)
def test_bodies_that_do_not_fit_the_schema(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkflowRequest.model_validate(body)


def test_executors_resolve_from_task_run_and_image(tasks: TaskRegistry) -> None:
    body = {
        "executor": "job",
        "dag": [
            {"name": "a", "task": "task_a"},
            {"name": "b", "task": "task_b", "executor": "inprocess"},
            {"name": "c", "image": "busybox", "command": ["true"]},
        ],
    }
    plan = compile_workflow(
        WorkflowRequest.model_validate(body),
        registry=tasks,
        policy=TaskPolicy(images=("busybox",)),
    )
    assert {tid: node.executor for tid, node in plan.tasks.items()} == {
        "a": Executor.JOB,
        "b": Executor.INPROCESS,
        "c": Executor.JOB,
    }
