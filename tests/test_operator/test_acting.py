"""Acting on runs in the operator, on kmock: a retry the API asked for (spec.retryRequest)
is carried out once, across a restart and against stale watch events; an atMostOnce
attempt's start is in the WorkflowRun before its body runs."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from stageflow.engine import task
from stageflow.operator import run_manager
from stageflow.operator.run_manager import RunManager
from tests.support.kmock_operator import NAMESPACE, STAMPING, Cluster, StartOperator

pytestmark = STAMPING

calls: Counter[str] = Counter()
STARTED = "2026-11-01T00:00:00.000000Z"


@task("op_retry_tracked")
def tracked(label: str) -> bool:
    calls[label] += 1
    return True


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


def failed_run(retry_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    spec = {
        "workflow": [
            {
                "type": "sequential",
                "tasks": [
                    {"name": label, "task": "op_retry_tracked", "params": {"label": label}}
                    for label in ("one", "two", "three")
                ],
            }
        ],
        "retryRequest": {"id": retry_id, "requestedBy": "ada", "requestedAt": STARTED},
    }
    done = {"phase": "Succeeded", "attempts": 1, "startedAt": STARTED, "finishedAt": STARTED}
    status = {
        "phase": "Failed",
        "message": "Task two failed: RuntimeError: flaky",
        "startedAt": STARTED,
        "finishedAt": STARTED,
        "tasks": {
            "one": done,
            "two": {**done, "phase": "Failed", "message": "RuntimeError: flaky"},
            "three": {"phase": "Skipped", "attempts": 0, "message": "upstream task two failed"},
        },
    }
    return spec, status


async def test_a_pending_retry_is_carried_out_once_across_a_restart(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    spec, status = failed_run("r-1")
    name = await cluster.create(spec, status=status)
    first = await start_operator()
    obj = await cluster.wait_for_phase(name, "Succeeded")
    assert calls == Counter({"two": 1, "three": 1})  # `one` had succeeded: not run again
    tasks = obj["status"]["tasks"]
    assert tasks["one"] == status["tasks"]["one"]
    assert tasks["two"]["attempts"] == 2
    [retry] = obj["status"]["retries"]
    assert (retry["id"], retry["by"], retry["previousPhase"]) == ("r-1", "ada", "Failed")
    assert retry["reset"] == ["two", "three"]
    assert retry["messages"]["two"] == "RuntimeError: flaky"
    await first.stop()
    await start_operator()  # lists the run again: the request is still in its spec
    await asyncio.sleep(0.5)  # a wrong start would have run `two` within this
    assert calls == Counter({"two": 1, "three": 1})
    again = await cluster.get(name)
    assert again is not None
    assert [entry["id"] for entry in again["status"]["retries"]] == ["r-1"]


def test_a_stale_event_showing_a_carried_out_retry_does_not_start_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The manager alone, with the run's driving replaced by a count of its starts."""
    starts: list[str] = []

    async def drive(*, obj: dict[str, Any], **_: Any) -> None:
        starts.append(obj["metadata"]["resourceVersion"])

    async def scenario() -> None:
        manager = RunManager(ctx=object())  # type: ignore[arg-type]
        spec, status = failed_run("r-7")
        stale = {
            "metadata": {"name": "run", "namespace": "ns", "resourceVersion": "5"},
            "spec": spec,
            "status": status,
        }
        manager.observe(stale)  # the request: carried out
        await asyncio.sleep(0)
        manager.observe(stale)  # while it runs
        await asyncio.sleep(0)
        manager.observe({**stale, "metadata": {**stale["metadata"], "resourceVersion": "4"}})
        await asyncio.sleep(0)
        applied = {**status, "retries": [{"id": "r-7"}], "phase": "Succeeded"}
        manager.observe({**stale, "status": applied})  # the end of the retried run
        spec_again, _ = failed_run("r-8")  # a new retry later: carried out too
        manager.observe({**stale, "spec": spec_again, "status": applied})
        await asyncio.sleep(0)

    monkeypatch.setattr(run_manager, "drive", drive)
    asyncio.run(scenario())
    assert starts == ["5", "5"]  # r-7 once (the stale copies ignored), then r-8


seen_before_body: list[bool] = []
patches_of: list[Cluster] = []


@task("op_charge")
def charge() -> bool:
    """Notes whether its attempt's start was in the WorkflowRun before this body ran."""
    cluster = patches_of[0]
    seen_before_body.append(
        any(
            (patch.data.get("status", {}).get("tasks", {}).get("pay") or {}).get("phase")
            == "Running"
            for patch in cluster.status_patches()
        )
    )
    return True


async def test_an_at_most_once_attempt_is_in_the_workflow_run_before_its_body_runs(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    seen_before_body.clear()
    patches_of[:] = [cluster]
    await start_operator(status_flush_seconds=5)  # a long window: only the barrier writes
    spec = {"dag": [{"name": "pay", "task": "op_charge", "delivery": "atMostOnce"}]}
    name = await cluster.create(spec)
    await cluster.wait_for_phase(name, "Succeeded")
    assert seen_before_body == [True]


async def test_a_retry_asked_for_while_the_run_waits_out_its_ttl_runs(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    """The operator still holds the run (its TTL wait) when the request comes: it runs it
    again, rather than dropping the request and deleting the run at the TTL."""
    await start_operator()
    spec, _ = failed_run("unused")
    del spec["retryRequest"]
    spec["ttlSecondsAfterFinished"] = 3600
    spec["workflow"][0]["tasks"][1]["task"] = "fail"  # `two` fails: the run ends Failed
    spec["workflow"][0]["tasks"][1]["params"] = {}
    name = await cluster.create(spec)
    await cluster.wait_for_phase(name, "Failed")
    obj = await cluster.get(name)
    assert obj is not None
    request = {"id": "r-ttl", "requestedAt": STARTED}
    await cluster.kube.patch_run(NAMESPACE, name, {"spec": {"retryRequest": request}})

    def retried(found: dict[str, Any] | None) -> bool:
        entries = ((found or {}).get("status") or {}).get("retries") or []
        return [entry["id"] for entry in entries] == ["r-ttl"] and (found or {}).get(
            "status", {}
        ).get("phase") in ("Succeeded", "Failed")

    again = await cluster.wait_for(name, retried)
    assert again is not None
    assert again["status"]["tasks"]["two"]["attempts"] == 2  # it ran again (and failed again)
    assert calls["one"] == 1  # what had succeeded did not


def test_a_resume_sent_while_no_operator_ran_applies_on_attach() -> None:
    from stageflow.operator.context import RunControl

    class Runner:
        resumed = suspended = 0

        def resume(self) -> None:
            Runner.resumed += 1

        def suspend(self) -> None:
            Runner.suspended += 1

    control = RunControl("ns", "run", generation=1)  # spec.suspend is false now
    control.attach(Runner())  # type: ignore[arg-type]
    assert (Runner.resumed, Runner.suspended) == (1, 0)
