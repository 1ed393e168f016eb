"""The operator's /metrics after known runs: counts, labels, and no run id among the labels."""

from __future__ import annotations

import asyncio

from tests.support.kmock_operator import STAMPING, Cluster, StartOperator
from tests.support.metrics import Samples, delta, label_values, scrape, value
from tests.support.polling import eventually
from tests.support.redis_server import free_port
from tests.support.workflows import failing, sequential

pytestmark = STAMPING

FINISHED = "stageflow_tasks_finished_total"


async def test_metrics_count_runs_tasks_patches_and_requests(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    url = await operator_with_metrics(start_operator)
    _, before = await asyncio.to_thread(scrape, url)
    assert value(before, "stageflow_leader") == 1

    ok = await cluster.create(
        {
            "workflow": [
                {"type": "parallel", "tasks": ["task_a", "task_b"]},
                {"type": "sequential", "tasks": ["task_c"]},
            ]
        }
    )
    bad = await cluster.create(
        sequential(failing("boom", "disk full", retries=1), {"name": "after", "task": "task_c"})
    )
    # Resumed with one task already done: that task was not finished by this operator.
    started = "2026-11-01T00:00:00.000000Z"
    resumed = await cluster.create(
        {"workflow": [{"type": "sequential", "tasks": ["task_a", "task_b"]}]},
        status={
            "phase": "Running",
            "startedAt": started,
            "tasks": {
                "task_a": {
                    "phase": "Succeeded",
                    "attempts": 1,
                    "startedAt": started,
                    "finishedAt": started,
                },
                "task_b": {"phase": "Pending", "attempts": 0},
            },
        },
    )
    await cluster.wait_for_phase(ok, "Succeeded")
    await cluster.wait_for_phase(bad, "Failed")
    await cluster.wait_for_phase(resumed, "Succeeded")

    after: Samples = {}

    async def settled() -> bool:
        nonlocal after
        _, after = await asyncio.to_thread(scrape, url)
        return value(after, "stageflow_runs_active") == 0

    await eventually(settled)
    text, after = await asyncio.to_thread(scrape, url)

    runs = "stageflow_runs_finished_total"
    assert delta(before, after, runs, phase="Succeeded") == 2
    assert delta(before, after, runs, phase="Failed") == 1
    assert delta(before, after, "stageflow_run_duration_seconds_count", phase="Succeeded") == 2
    # task_a, task_b, task_c of `ok` and task_b of `resumed`; task_a of `resumed` ended before.
    assert delta(before, after, FINISHED, phase="Succeeded", executor="inprocess") == 4
    assert delta(before, after, FINISHED, phase="Failed", executor="inprocess") == 1  # 2 attempts
    assert delta(before, after, FINISHED, phase="Skipped", executor="none") == 1
    assert (
        delta(
            before,
            after,
            "stageflow_task_duration_seconds_count",
            phase="Succeeded",
            executor="inprocess",
        )
        == 4
    )
    patches = delta(before, after, "stageflow_status_patches_total", result="ok")
    assert patches == len(cluster.status_patches()) >= 3
    assert delta(before, after, "stageflow_status_patch_duration_seconds_count") == patches
    # Every status patch is an apiserver PATCH answered 200 (plus the test's own calls).
    assert delta(before, after, "stageflow_apiserver_requests_total", verb="patch", code="200") >= (
        patches
    )
    assert (
        delta(before, after, "stageflow_apiserver_requests_total", verb="create", code="200") >= 3
    )
    assert not {ok, bad, resumed} & label_values(after)
    assert ok not in text


async def test_failed_status_patches_are_counted(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    url = await operator_with_metrics(start_operator)
    _, before = await asyncio.to_thread(scrape, url)
    cluster.mock.status_outage = True
    name = await cluster.create({"workflow": [{"type": "sequential", "tasks": ["task_a"]}]})
    await eventually(lambda: _true(cluster.mock.failed_status_writes >= 2))
    cluster.mock.status_outage = False
    await cluster.wait_for_phase(name, "Succeeded")
    _, after = await asyncio.to_thread(scrape, url)
    errors = delta(before, after, "stageflow_status_patches_total", result="error")
    assert errors >= 2
    assert delta(before, after, "stageflow_apiserver_requests_total", verb="patch", code="503") >= (
        errors
    )


async def operator_with_metrics(start_operator: StartOperator) -> str:
    """Start an operator serving metrics; the URL of its /metrics."""
    port = free_port()
    await start_operator(metrics_port=port)
    return f"http://127.0.0.1:{port}/metrics"


async def _true(condition: bool) -> bool:
    return condition
