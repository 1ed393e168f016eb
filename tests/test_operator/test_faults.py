"""The operator under faults and load on kmock: issue 9's findings 3, 4, 5 and 7.

Each test here failed against the daemon-per-run operator it replaced.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stageflow.engine import task
from stageflow.models.status import format_timestamp
from tests.support.kmock_operator import STAMPING, Cluster, StartOperator
from tests.support.polling import eventually

pytestmark = STAMPING

SEED: dict[str, Any] = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
}
executions: Counter[str] = Counter()
started_at: dict[str, list[datetime]] = {}


@task("fault_counted")
def counted(label: str, ok: bool = True) -> bool:
    executions[label] += 1
    started_at.setdefault(label, []).append(datetime.now(UTC))
    return ok


@pytest.fixture(autouse=True)
def _reset() -> None:
    executions.clear()
    started_at.clear()


def counted_tasks(*labels: str) -> dict[str, Any]:
    entries = [
        {"name": label, "task": "fault_counted", "params": {"label": label}} for label in labels
    ]
    return {"workflow": [{"type": "parallel", "tasks": entries}]}


async def test_seed_runs_cost_a_create_and_at_most_two_status_patches(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    """Finding 7 (and the write budget): no finalizer, no annotations, coalesced status (the
    operator's default window: a shorter one makes the count depend on the machine's load)."""
    await start_operator(status_flush_seconds=0.5)
    names = [await cluster.create(SEED) for _ in range(20)]
    for name in names:
        await cluster.wait_for_phase(name, "Succeeded")
    assert cluster.object_writes() == [], "kopf's bookkeeping wrote to the WorkflowRuns"
    per_run = Counter(request.name for request in cluster.status_patches())
    assert set(per_run) == set(names)
    assert max(per_run.values()) <= 2, per_run


async def test_tasks_run_once_through_an_apiserver_outage(
    cluster: Cluster, start_operator: StartOperator, caplog: pytest.LogCaptureFixture
) -> None:
    """Findings 3 and 4: status writes fail for a while; the run goes on from memory, its
    tasks never run again, and the outage is one WARNING and one INFO, no traceback."""
    caplog.set_level(logging.INFO)
    await start_operator()
    cluster.mock.status_outage = True
    name = await cluster.create(counted_tasks("one", "two"))

    async def refused_a_few() -> bool:
        return bool(cluster.mock.failed_status_writes >= 4)

    await eventually(refused_a_few)
    cluster.mock.status_outage = False
    obj = await cluster.wait_for_phase(name, "Succeeded")
    assert executions == Counter({"one": 1, "two": 1}), "tasks ran again"
    assert {entry["attempts"] for entry in obj["status"]["tasks"].values()} == {1}
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert tracebacks == [], "a traceback per failed write"

    # The operator logs the recovery after the patch's answer, which the test may see first.
    async def recovery_logged() -> bool:
        return any("status writes succeed again" in r.getMessage() for r in caplog.records)

    await eventually(recovery_logged)
    records = [r for r in caplog.records if r.name.startswith("stageflow")]
    warnings = [r for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "status writes to the apiserver fail" in warnings[0].getMessage()


async def test_a_run_resumed_in_its_backoff_waits_and_counts_the_failed_attempt(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    """Finding 5: an operator killed during a retry's backoff (retries: 1) left this status;
    the new one makes exactly one more attempt, not before it is due."""
    now = datetime.now(UTC)
    due = now + timedelta(seconds=0.5)
    spec = {
        "dag": [
            {
                "name": "flaky",
                "task": "fault_counted",
                "params": {"label": "flaky", "ok": False},
                "retries": 1,
                "retryBackoffSeconds": 15,
            }
        ]
    }
    status = {
        "phase": "Running",
        "startedAt": format_timestamp(now),
        "tasks": {
            "flaky": {
                "phase": "Running",
                "attempts": 1,
                "startedAt": format_timestamp(now),
                "nextAttemptAt": format_timestamp(due),
                "message": "attempt 1 failed: task returned False; retrying in 15s",
            }
        },
    }
    name = await cluster.create(spec, status=status)
    await start_operator()
    obj = await cluster.wait_for_phase(name, "Failed")
    entry = obj["status"]["tasks"]["flaky"]
    assert entry["attempts"] == 2
    assert executions["flaky"] == 1, "an extra attempt was granted"
    assert started_at["flaky"][0] >= due, "the rest of the backoff was skipped"
    assert entry.get("nextAttemptAt") is None


async def test_a_finished_run_is_not_started_again_by_a_later_event(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    """Events after the end (a label added, say) never run a finished run again."""
    await start_operator()
    name = await cluster.create(counted_tasks("once"))
    await cluster.wait_for_phase(name, "Succeeded")
    await cluster.kube.patch_run("default", name, {"metadata": {"labels": {"touched": "yes"}}})
    touched = await cluster.wait_for(
        name,
        lambda obj: obj is not None and obj["metadata"].get("labels", {}).get("touched") == "yes",
    )
    assert touched is not None
    await cluster.create(counted_tasks("later"))  # a later run, so the first one's event is seen

    async def later_ran() -> bool:
        return executions["later"] == 1

    await eventually(later_ran)
    assert executions["once"] == 1
