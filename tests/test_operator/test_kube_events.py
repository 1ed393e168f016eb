"""Kubernetes Events on WorkflowRuns (kmock): which transitions, rate-limited, never blocking."""

from __future__ import annotations

from typing import Any

import kmock
import pytest

from stageflow.operator.kube_events import KubeEventRecorder, involved
from tests.support.kmock_operator import NAMESPACE, STAMPING, Cluster, StartOperator
from tests.support.polling import eventually
from tests.support.workflows import failing

pytestmark = STAMPING

EVENTS = "v1/events"


def posted(cluster: Cluster, run: str) -> list[dict[str, Any]]:
    """The Events the operator POSTed about `run`, in order."""
    return [
        request.data
        for request in cluster.mock[kmock.resource(EVENTS), kmock.method.POST]
        if request.data["involvedObject"]["name"] == run
    ]


def reasons(cluster: Cluster, run: str) -> list[str]:
    return [event["reason"] for event in posted(cluster, run)]


@pytest.mark.parametrize("hold", [0.01, 30], ids=["short-hold", "held-start"])
async def test_start_retry_failure_and_end_are_events_on_the_run(
    cluster: Cluster, start_operator: StartOperator, hold: float
) -> None:
    # With a long hold, the retry's Event releases the held Started first.
    await start_operator(status_flush_seconds=hold)
    name = await cluster.create(
        {"workflow": [{"type": "sequential", "tasks": [failing("boom", "boom broke", retries=1)]}]}
    )
    obj = await cluster.wait_for_phase(name, "Failed")

    async def ended() -> bool:
        return "Failed" in reasons(cluster, name)

    await eventually(ended)
    events = posted(cluster, name)
    assert [(e["reason"], e["type"]) for e in events] == [
        ("Started", "Normal"),
        ("RetryScheduled", "Normal"),
        ("TaskFailed", "Warning"),
        ("Failed", "Warning"),
    ]
    assert "attempt 1 failed" in events[1]["message"]
    assert "boom broke" in events[2]["message"]
    assert events[3]["message"] == obj["status"]["message"]
    assert events[0]["involvedObject"] == {
        "apiVersion": "stageflow.dev/v1alpha1",
        "kind": "WorkflowRun",
        "name": name,
        "namespace": NAMESPACE,
        "uid": obj["metadata"]["uid"],
    }
    assert {e["source"]["component"] for e in events} == {"stageflow-operator"}


async def test_a_run_that_ends_within_the_hold_gets_one_event_saying_when_it_started(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator(status_flush_seconds=5)  # Started is held as long as a flush
    name = await cluster.create({"workflow": [{"type": "parallel", "tasks": ["task_a", "task_b"]}]})
    await cluster.wait_for_phase(name, "Succeeded")

    async def ended() -> bool:
        return "Succeeded" in reasons(cluster, name)

    await eventually(ended)
    [event] = posted(cluster, name)
    assert (event["reason"], event["type"]) == ("Succeeded", "Normal")
    assert event["message"].startswith("2/2 tasks finished (started ")


async def test_a_run_longer_than_the_hold_gets_started_then_its_end(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator(status_flush_seconds=0.05)
    sleeps = {"name": "nap", "task": "sleep", "params": {"seconds": 0.5}}
    name = await cluster.create({"workflow": [{"type": "sequential", "tasks": [sleeps]}]})
    await cluster.wait_for_phase(name, "Succeeded")

    async def ended() -> bool:
        return "Succeeded" in reasons(cluster, name)

    await eventually(ended)
    started, succeeded = posted(cluster, name)
    assert [started["reason"], succeeded["reason"]] == ["Started", "Succeeded"]
    assert started["firstTimestamp"] <= succeeded["firstTimestamp"]
    assert "(started" not in succeeded["message"]


async def test_many_failing_tasks_write_a_bounded_number_of_events(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator(events_per_run=5)
    tasks = [failing(f"t{i}", f"t{i} broke") for i in range(200)]
    name = await cluster.create(
        {"failFast": False, "workflow": [{"type": "parallel", "tasks": tasks}]}
    )
    await cluster.wait_for_phase(name, "Failed")

    async def ended() -> bool:
        return "Failed" in reasons(cluster, name)

    await eventually(ended)
    assert reasons(cluster, name) == [
        "Started",
        *["TaskFailed"] * 5,
        "EventsSuppressed",
        "Failed",
    ]


async def test_a_full_queue_drops_events_instead_of_waiting(cluster: Cluster) -> None:
    """The apiserver never answers the recorder (its worker is not started): emit returns."""
    recorder = KubeEventRecorder(cluster.kube, queue_size=3)
    about = involved(NAMESPACE, "r", "u")
    for number in range(10):
        recorder.emit(about, reason="TaskFailed", message=str(number))  # never blocks
    assert recorder.queued == 3
    recorder.start()
    await recorder.stop()
    assert [e["message"] for e in (r.data for r in cluster.mock[kmock.method.POST])] == [
        "0",
        "1",
        "2",
    ]
