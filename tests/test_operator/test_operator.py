"""The operator on kmock: running, status subresource, coalescing, resume, cancel, delete."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest
import redis.asyncio as aioredis

from stageflow.engine import task
from stageflow.store.keys import run_key, tasks_key
from tests.support.kmock_operator import NAMESPACE, SEED, STAMPING, Cluster, StartOperator
from tests.support.polling import eventually

pytestmark = STAMPING

calls: Counter[str] = Counter()
cancelled: list[str] = []


@task("op_tracked")
def tracked(label: str) -> bool:
    calls[label] += 1
    return True


@task("op_wait")
async def wait(label: str, seconds: float = 30) -> bool:
    calls[label] += 1
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        cancelled.append(label)
        raise
    return True


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    cancelled.clear()


def stages(*groups: list[dict[str, Any]]) -> dict[str, Any]:
    return {"workflow": [{"type": "sequential", "tasks": group} for group in groups]}


def phases(obj: dict[str, Any]) -> dict[str, str]:
    return {name: entry["phase"] for name, entry in obj["status"]["tasks"].items()}


async def test_seed_run_succeeds_through_the_status_subresource(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    name = await cluster.create(SEED)
    obj = await cluster.wait_for_phase(name, "Succeeded")
    status = obj["status"]
    assert phases(obj) == {"task_a": "Succeeded", "task_b": "Succeeded", "task_c": "Succeeded"}
    assert status["progress"] == "3/3"
    assert status["observedGeneration"] == 1
    assert status["conditions"][0]["type"] == "Succeeded"
    assert status["conditions"][0]["status"] == "True"
    for entry in status["tasks"].values():
        assert entry["attempts"] == 1
        assert entry["startedAt"].endswith("Z")
        assert entry["finishedAt"] >= entry["startedAt"]
    patches = cluster.status_patches()
    assert patches, "status must go through the status subresource"
    # Only status is written ("metadata" is the emulator's own resourceVersion stamp).
    assert all(set(patch.data) - {"metadata"} == {"status"} for patch in patches)


async def test_a_burst_of_transitions_is_coalesced(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator(status_flush_seconds=0.1)
    tasks = [{"name": f"n{i}", "task": "noop"} for i in range(300)]
    name = await cluster.create({"workflow": [{"type": "parallel", "tasks": tasks}]})
    obj = await cluster.wait_for_phase(name, "Succeeded")
    assert obj["status"]["progress"] == "300/300"
    assert len(cluster.status_patches()) <= 10  # 900 transitions


async def test_failure_is_recorded_and_skips_the_rest(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    name = await cluster.create(
        stages(
            [
                {"name": "boom", "task": "fail", "params": {"message": "disk full"}},
                {"name": "after", "task": "task_c"},
            ]
        )
    )
    obj = await cluster.wait_for_phase(name, "Failed")
    assert phases(obj) == {"boom": "Failed", "after": "Skipped"}
    assert obj["status"]["message"] == "Task boom failed: RuntimeError: disk full"
    assert obj["status"]["conditions"][0]["status"] == "False"


async def test_resume_never_reruns_succeeded_tasks(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    started = "2026-11-01T00:00:00.000000Z"
    status = {
        "phase": "Running",
        "startedAt": started,
        "tasks": {
            "done": {
                "phase": "Succeeded",
                "attempts": 1,
                "startedAt": started,
                "finishedAt": started,
            },
            "busy": {"phase": "Running", "attempts": 1, "startedAt": started},
            "last": {"phase": "Pending", "attempts": 0},
        },
    }
    spec = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [
                    {"name": "done", "task": "op_tracked", "params": {"label": "done"}},
                    {"name": "busy", "task": "op_tracked", "params": {"label": "busy"}},
                ],
            },
            {
                "type": "parallel",
                "tasks": [{"name": "last", "task": "op_tracked", "params": {"label": "last"}}],
            },
        ]
    }
    name = await cluster.create(spec, status=status)
    await start_operator()
    obj = await cluster.wait_for_phase(name, "Succeeded")
    assert calls == Counter({"busy": 1, "last": 1})
    tasks = obj["status"]["tasks"]
    assert tasks["done"]["attempts"] == 1
    assert tasks["busy"]["attempts"] == 2
    assert tasks["busy"]["startedAt"] == started


async def test_an_operator_restart_resumes_the_run(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    first_operator = await start_operator()
    spec = stages(
        [
            {"name": "first", "task": "op_tracked", "params": {"label": "first"}},
            {"name": "slow", "task": "op_wait", "params": {"label": "slow", "seconds": 0.3}},
            {"name": "last", "task": "op_tracked", "params": {"label": "last"}},
        ]
    )
    name = await cluster.create(spec)
    await cluster.wait_for(
        name,
        lambda obj: (
            bool(obj) and phases(obj).get("slow") == "Running" if obj and "status" in obj else False
        ),
    )
    await first_operator.stop()
    stopped = await cluster.get(name)
    assert stopped is not None
    assert stopped["status"]["phase"] == "Running", (
        "a shut-down operator must leave the run to resume"
    )
    assert phases(stopped) == {"first": "Succeeded", "slow": "Running", "last": "Pending"}
    assert cancelled == ["slow"]

    await start_operator()
    obj = await cluster.wait_for_phase(name, "Succeeded")
    assert calls == Counter({"first": 1, "slow": 2, "last": 1})
    tasks = obj["status"]["tasks"]
    assert tasks["first"]["attempts"] == 1
    assert tasks["slow"]["attempts"] == 2


async def test_cancel_request_cancels_running_and_pending(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    name = await cluster.create(
        stages(
            [
                {"name": "long", "task": "op_wait", "params": {"label": "long"}},
                {"name": "after", "task": "task_c"},
            ]
        )
    )
    await cluster.wait_for(name, lambda obj: calls["long"] == 1)
    await cluster.kube.patch_run(NAMESPACE, name, {"spec": {"cancelRequested": True}})
    obj = await cluster.wait_for_phase(name, "Cancelled")
    assert phases(obj) == {"long": "Cancelled", "after": "Cancelled"}
    assert cancelled == ["long"]


async def test_deleting_the_run_cancels_what_runs(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    name = await cluster.create(
        stages([{"name": "long", "task": "op_wait", "params": {"label": "long"}}])
    )
    await cluster.wait_for(name, lambda obj: calls["long"] == 1)
    await cluster.kube.delete_run(NAMESPACE, name)
    await cluster.wait_for(name, lambda obj: obj is None)
    assert cancelled == ["long"]


async def test_an_invalid_spec_fails_the_run_with_the_reason(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    name = await cluster.create(stages([{"name": "x", "task": "no_such_task"}]))
    obj = await cluster.wait_for_phase(name, "Failed")
    assert obj["status"]["message"] == "Invalid workflow: Unknown task: no_such_task"


async def test_ttl_after_finished_deletes_the_run(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    await start_operator()
    name = await cluster.create({**SEED, "ttlSecondsAfterFinished": 0})
    await cluster.wait_for(name, lambda obj: obj is None)
    finished = [p for p in cluster.status_patches() if p.data["status"].get("phase") == "Succeeded"]
    assert finished, "the run finished before it was deleted"


async def test_the_mirror_follows_what_the_operator_observes(
    cluster: Cluster, start_operator: StartOperator, redis_url: str
) -> None:
    await start_operator(redis_url=redis_url)
    name = await cluster.create(SEED)
    obj = await cluster.wait_for_phase(name, "Succeeded")
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        expected = phases(obj)

        async def mirrored() -> bool:
            return bool(await client.hgetall(tasks_key(NAMESPACE, name)) == expected)

        await eventually(mirrored)

        # A change made by someone else (not the operator) is mirrored too.
        async def renamed() -> bool:
            return bool(await client.hget(run_key(NAMESPACE, name), "name") == "renamed")

        await cluster.kube.patch_run(NAMESPACE, name, {"spec": {"name": "renamed"}})
        await eventually(renamed)

        async def dropped() -> bool:
            return not await client.exists(tasks_key(NAMESPACE, name))

        await cluster.kube.delete_run(NAMESPACE, name)
        await eventually(dropped)
    finally:
        await client.aclose()
