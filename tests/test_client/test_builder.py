"""The workflow builder produces the request body the API takes (no server needed)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from stageflow.client import Dag, Stages, Task, WorkflowRequest, parallel, sequential
from stageflow.engine import Executor


def test_stages_give_the_seed_body() -> None:
    body = Stages(parallel("task_a", "task_b"), sequential("task_c")).body()
    assert body["workflow"] == [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
    assert (
        WorkflowRequest.model_validate(body)
        == Stages(parallel("task_a", "task_b"), sequential("task_c")).request()
    )


def test_shift_sets_depends_on_and_a_dag_pulls_in_what_it_waits_for() -> None:
    a, b, c, d = Task("a", "task_a"), Task("b", "task_b"), Task("c", "task_c"), Task("d")
    [a, b] >> c >> d
    body = Dag(d, name="chain", parallelism=2).body()
    assert [task["name"] for task in body["dag"]] == ["a", "b", "c", "d"]
    assert [task.get("dependsOn") for task in body["dag"]] == [None, None, ["a", "b"], ["c"]]
    assert body["dag"][3]["task"] == "d"  # `task` defaults to the name
    assert (body["name"], body["parallelism"]) == ("chain", 2)


def test_fan_out_with_shift_and_depends_on() -> None:
    source = Task("source", "echo")
    left, right = Task("left", "echo"), Task("right", "echo")
    assert source >> [left, right] == [left, right]
    join = Task("join", "echo").depends_on(left, right)
    assert [t.name for t in Dag(join).tasks] == ["source", "left", "right", "join"]


def test_outputs_are_references_in_params() -> None:
    profile = Task("profile", "echo")
    report = Task(
        "report", "echo", params={"rows": profile.output("rows"), "all": profile.output()}
    )
    assert report.spec().params == {
        "rows": "{{ tasks.profile.outputs.rows }}",
        "all": "{{ tasks.profile.outputs }}",
    }


def test_task_options_use_the_api_names() -> None:
    spec = Task(
        "fetch", "http_get", retries=2, retry_backoff_seconds=0.5, executor=Executor.JOB
    ).spec()
    dumped = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert dumped["retryBackoffSeconds"] == 0.5
    assert dumped["executor"] == "job"


def test_mistakes_are_caught_where_they_are_made() -> None:
    with pytest.raises(ValidationError):
        Task("bad", "echo", retries=-1)
    a, b = Task("a"), Task("b")
    a >> b
    with pytest.raises(ValueError, match="belong to a Dag"):
        parallel(b)
    with pytest.raises(ValueError, match="itself"):
        a.depends_on(a)
    b >> a
    with pytest.raises(ValueError, match="cycle"):
        Dag(a)
