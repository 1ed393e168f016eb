"""The data-quality example: its rules, and the pipeline run through the engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from examples.data_quality import tasks as dq
from stageflow.engine import RunPhase, TaskRegistry, WorkflowRequest, compile_workflow
from stageflow.engine import registry as process_registry
from tests.support.engine import RecordingSink, make_runner

PIPELINE = json.loads((Path(dq.__file__).parent / "pipeline.json").read_text())


def test_every_kind_of_anomaly_has_a_rule_that_removes_it() -> None:
    rows = dq.load("orders.csv")
    for column in rows[0]:
        for kind in dq.anomalies(rows, column):
            fixed = dq.apply(dq.RULES[(column, kind)], rows)
            assert dq.anomalies(fixed, column)[kind] == 0, (column, kind)


def test_the_pipeline_validates(tasks: TaskRegistry) -> None:
    process_registry.load(["examples.data_quality.tasks"])
    plan = compile_workflow(WorkflowRequest.model_validate(PIPELINE), registry=process_registry)
    assert plan.tasks["clean"].depends_on == ("derive_rules",)
    assert set(plan.tasks["report"].depends_on) == {"derive_rules", "clean"}


@pytest.mark.parametrize(("threshold", "iterations"), [(2, 4), (7, 2), (20, 1)])
async def test_the_pipeline_loops_until_the_threshold(threshold: int, iterations: int) -> None:
    process_registry.load(["examples.data_quality.tasks"])
    body = {**PIPELINE, "params": {**PIPELINE["params"], "threshold": threshold}}
    sink = RecordingSink()
    status = await make_runner(body, process_registry, sink).run()
    assert status.phase is RunPhase.SUCCEEDED
    clean = status.tasks["clean"]
    assert clean.iterations == iterations
    assert clean.outputs["remaining"] <= threshold
    report = status.tasks["report"].outputs
    assert report["anomalies_before"] == 14
    assert report["anomalies_after"] == clean.outputs["remaining"]
    assert len(report["rules_applied"]) == iterations
    assert [f"check[{i}]" in status.tasks for i in range(6)] == [True] * 6
    last = clean.outputs["applied"][-1]
    assert f"iteration {iterations - 1}: applied {last}" in sink.logs["clean"]


def test_the_example_gives_up_when_the_threshold_cannot_be_met() -> None:
    process_registry.load(["examples.data_quality.tasks"])
    body = {**PIPELINE, "params": {**PIPELINE["params"], "threshold": -1}}
    import asyncio

    status = asyncio.run(make_runner(body, process_registry).run())
    assert status.phase is RunPhase.FAILED
    assert status.tasks["clean"].message == "until condition still false after 10 iterations"
    assert status.tasks["report"].phase.value == "Skipped"
