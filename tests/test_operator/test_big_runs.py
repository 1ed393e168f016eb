"""Big runs on kmock: a fan-out of thousands keeps its WorkflowRun small (alike entries
folded, models/folding.py), costs status patches by the clock, and a restart resumes it
from the folded status without running an instance recorded as succeeded again."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import redis.asyncio as aioredis

from stageflow.engine import task
from stageflow.kube import record_from_object
from stageflow.models.folding import INLINE_TASKS
from stageflow.models.status import RunStatus
from stageflow.models.task_ids import compress_ids
from stageflow.store.keys import events_channel, run_key, tasks_key
from tests.support.kmock_operator import NAMESPACE, STAMPING, Cluster, StartOperator
from tests.support.polling import eventually

pytestmark = STAMPING

ran: Counter[int] = Counter()
lock = threading.Lock()


@task("op_counted_item")
def counted_item(item: int) -> bool:
    with lock:
        ran[item] += 1
    return True


def fan_out(count: int, **options: Any) -> dict[str, Any]:
    return {
        "dag": [
            {"name": "first", "task": "noop"},
            {
                "name": "big",
                "task": "op_counted_item",
                "params": {"item": "{{ item }}"},
                "forEach": {"count": count},
                "dependsOn": ["first"],
            },
            {"name": "after", "task": "noop", "dependsOn": ["big"]},
        ],
        **options,
    }


def size(obj: dict[str, Any]) -> int:
    return len(json.dumps(obj, separators=(",", ":")))


async def test_a_fan_out_of_thousands_is_stored_folded_and_small(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    ran.clear()
    await start_operator(status_flush_seconds=0.1)
    name = await cluster.create(fan_out(5000))
    obj = await cluster.wait_for_phase(name, "Succeeded")
    status = obj["status"]
    assert status["progress"] == "5003/5003"
    assert status["tasks"] == {}  # nothing under way: every entry folded
    tasks, parent = status["folded"]  # the forEach task itself made no attempt
    assert tasks["like"] == {"phase": "Succeeded", "attempts": 1, "executor": "inprocess"}
    assert tasks["count"] == 5002
    assert tasks["tasks"] == ["first", "after", "big[0-4999]"]
    assert parent["like"] == {"phase": "Succeeded", "attempts": 0, "executor": "inprocess"}
    assert parent["tasks"] == ["big"]
    assert size(obj) < 4096  # 5,000 instances whole would be over a megabyte
    assert sorted(ran) == list(range(5000))
    assert set(ran.values()) == {1}
    record = record_from_object(obj)
    assert len(record.status.tasks) == 5003
    assert {task.phase.value for task in record.status.tasks.values()} == {"Succeeded"}
    # every patch was small too, and there were few of them
    patches = cluster.status_patches()
    assert len(patches) <= 40
    assert max(size(patch.data) for patch in patches) < 300_000


async def test_a_run_resumed_from_a_folded_status_reruns_no_recorded_success(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    ran.clear()
    done = [f"big[{index}]" for index in range(0, 3000, 2)]  # every other one
    status: dict[str, Any] = {
        "phase": "Running",
        "startedAt": "2026-11-01T00:00:00.000000Z",
        "tasks": {
            "big": {"phase": "Running", "attempts": 0, "executor": "inprocess"},
            "big[1]": {"phase": "Running", "attempts": 1, "executor": "inprocess"},
        },
        "folded": [
            {
                "like": {"phase": "Succeeded", "attempts": 1, "executor": "inprocess"},
                "tasks": compress_ids(["first", *done]),
                "count": 1 + len(done),
            },
            {
                "like": {"phase": "Pending", "executor": "inprocess"},
                "tasks": compress_ids(["after", *(f"big[{index}]" for index in range(3, 3000, 2))]),
                "count": 1 + 1499,
            },
        ],
    }
    assert len(status["folded"][0]["tasks"]) == 1501  # no ranges: every other index
    name = await cluster.create(fan_out(3000), status=status)
    await start_operator(status_flush_seconds=0.1)
    obj = await cluster.wait_for_phase(name, "Succeeded")
    assert sorted(ran) == list(range(1, 3000, 2)), "only what was not recorded as succeeded"
    assert set(ran.values()) == {1}
    record = record_from_object(obj)
    assert record.status.tasks["big[1]"].attempts == 2  # interrupted: attempted again
    assert record.status.tasks["big[0]"].attempts == 1
    assert obj["status"]["progress"] == "3003/3003"


async def test_a_run_that_grows_big_moves_its_entries_into_folded_groups(
    cluster: Cluster, start_operator: StartOperator
) -> None:
    """Small while its declared tasks run (every entry whole, as before), big once the
    fan-out starts: the patch that folds removes the whole entries (null) it folds."""
    await start_operator(status_flush_seconds=0.05)
    body = fan_out(INLINE_TASKS + 500, parallelism=50)
    body["dag"][0] = {"name": "first", "task": "sleep", "params": {"seconds": 0.5}}
    name = await cluster.create(body)
    obj = await cluster.wait_for_phase(name, "Succeeded")
    patches = [patch.data["status"] for patch in cluster.status_patches()]
    first_big = next(index for index, patch in enumerate(patches) if patch.get("folded"))
    assert any("first" in patch.get("tasks", {}) for patch in patches[:first_big])
    assert patches[first_big]["tasks"].get("first", "kept") is None  # removed: now folded
    assert obj["status"]["tasks"] == {}
    assert RunStatus.model_validate(obj["status"]).folded


async def test_the_mirror_keeps_a_big_run_folded_with_every_phase_in_its_hash(
    cluster: Cluster, start_operator: StartOperator, redis_url: str
) -> None:
    """The mirror reads a big run as stored (never making its 3,000 entries): its Redis
    detail is the folded status, its hash has every task's phase, and what it publishes
    names no succeeded instance."""
    ran.clear()
    await start_operator(redis_url=redis_url, status_flush_seconds=0.1)
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with client.pubsub() as pubsub:
            name = "6f1c2d52-7a1b-4a4e-9c0e-3f1b2a6d8e10"
            await pubsub.subscribe(events_channel(NAMESPACE, name))
            await cluster.create(fan_out(3000), name=name)
            await cluster.wait_for_phase(name, "Succeeded")

            async def mirrored() -> bool:
                phases = await client.hgetall(tasks_key(NAMESPACE, name))
                return len(phases) == 3003 and set(phases.values()) == {"Succeeded"}

            await eventually(mirrored)
            detail = json.loads(await client.hget(run_key(NAMESPACE, name), "detail") or "{}")
            assert detail["tasks"] == {}
            assert sum(group["count"] for group in detail["folded"]) == 3003
            assert len(json.dumps(detail)) < 4096
            events = []
            while (message := await pubsub.get_message(timeout=0.5)) is not None:
                if message["type"] == "message":
                    events.append(json.loads(message["data"]))
        assert events, "nothing was published"
        for event in events:
            assert all(
                task["phase"] != "Succeeded" or "[" not in task_id
                for task_id, task in event["tasks"].items()
            )
        assert events[-1]["fanouts"] == {"big": {"total": 3000, "phases": {"Succeeded": 3000}}}
    finally:
        await client.aclose()
