"""The operator's result cache on kmock: a WorkflowRun created again with the same inputs
reuses the first one's outputs, in memory (no Redis) and in Redis."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.support.kmock_operator import STAMPING, Cluster, StartOperator

pytestmark = STAMPING


def spec(value: str) -> dict[str, Any]:
    task = {"name": "e", "task": "echo", "params": {"value": value}}
    return {"dag": [{**task, "cache": {"ttlSeconds": 600}}]}


@pytest.mark.parametrize("store", ["memory", "redis"])
async def test_a_run_created_again_reuses_the_first_ones_outputs(
    cluster: Cluster, start_operator: StartOperator, request: pytest.FixtureRequest, store: str
) -> None:
    redis_url = request.getfixturevalue("redis_url") if store == "redis" else None
    await start_operator(redis_url=redis_url)
    value = str(uuid.uuid4())
    first = await cluster.create(spec(value))
    await cluster.wait_for_phase(first, "Succeeded")
    second = await cluster.create(spec(value))
    task = (await cluster.wait_for_phase(second, "Succeeded"))["status"]["tasks"]["e"]
    assert task["cached"] is True
    assert task["cachedFrom"] == {"runId": first, "task": "e"}
    assert task["attempts"] == 0
    assert task["outputs"] == {"value": value}
