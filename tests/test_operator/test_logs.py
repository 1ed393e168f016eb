"""The operator's lines about a run carry run_id and namespace, and task inside an attempt."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from stageflow.engine import task
from stageflow.logs import handler
from tests.support.kmock_operator import NAMESPACE, STAMPING, Cluster, StartOperator
from tests.support.polling import eventually

pytestmark = STAMPING

task_logger = logging.getLogger("tests.task_lines")


@task("logs_sync")
def sync_task() -> bool:
    task_logger.info("sync task says hello")
    return True


@task("logs_async")
async def async_task() -> bool:
    task_logger.info("async task says hello")
    return True


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    out = handler("json", stream)
    root = logging.getLogger()
    level = root.level
    root.addHandler(out)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(out)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_every_line_about_a_run_names_it(
    cluster: Cluster, start_operator: StartOperator, json_lines: io.StringIO
) -> None:
    await start_operator()
    tasks = [{"name": "s", "task": "logs_sync"}, {"name": "a", "task": "logs_async"}]
    name = await cluster.create({"workflow": [{"type": "parallel", "tasks": tasks}]})
    await cluster.wait_for_phase(name, "Succeeded")

    async def summary_logged() -> bool:
        return any(
            line["message"].startswith(f"WorkflowRun {NAMESPACE}/{name} Succeeded")
            for line in lines(json_lines)
        )

    await eventually(summary_logged)
    found = lines(json_lines)
    said = {line["message"]: line for line in found if line["logger"] == "tests.task_lines"}
    assert said["sync task says hello"]["task"] == "s"
    assert said["async task says hello"]["task"] == "a"
    for line in said.values():
        assert (line["run_id"], line["namespace"]) == (name, NAMESPACE)
    summary = next(line for line in found if line["message"].startswith("WorkflowRun "))
    assert (summary["run_id"], summary["namespace"]) == (name, NAMESPACE)
    assert "task" not in summary
