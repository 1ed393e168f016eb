"""Which requests are compiled on the event loop (cheap ones) and which in a thread."""

from __future__ import annotations

from typing import Any

import pytest

from stageflow.api.backends.common import INLINE_PARAM_BUDGET, INLINE_TASKS, _compiles_quickly
from stageflow.engine import WorkflowRequest

SEED = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", {"name": "b", "task": "task_b"}]},
        {"type": "sequential", "tasks": [{"name": "c", "task": "task_c", "params": {"n": 3}}]},
    ]
}


def request(**task: Any) -> WorkflowRequest:
    return WorkflowRequest.model_validate({"dag": [{"name": "t", "task": "task_a", **task}]})


def test_the_seed_and_small_params_compile_on_the_loop() -> None:
    assert _compiles_quickly(WorkflowRequest.model_validate(SEED))
    assert _compiles_quickly(request(params={"path": "s3://bucket/key", "n": [1, 2, 3]}))


@pytest.mark.parametrize(
    "task",
    [
        {"when": "true"},  # CEL is parsed: a long condition takes 100 ms
        {"until": "true", "retries": 1},
        {"forEach": [1, 2, 3]},
        {"params": {"text": "x" * INLINE_PARAM_BUDGET}},
        {"params": {"deep": [[[[[]]]]] * INLINE_PARAM_BUDGET}},
    ],
)
def test_conditions_and_big_params_go_to_a_thread(task: dict[str, Any]) -> None:
    assert not _compiles_quickly(request(**task))


def test_many_tasks_or_big_run_params_go_to_a_thread() -> None:
    tasks = [{"name": f"t{i}", "task": "task_a"} for i in range(INLINE_TASKS + 1)]
    assert not _compiles_quickly(WorkflowRequest.model_validate({"dag": tasks}))
    big = {**SEED, "params": {"blob": "y" * INLINE_PARAM_BUDGET}}
    assert not _compiles_quickly(WorkflowRequest.model_validate(big))
