"""The result cache through the HTTP API, on every backend and store: a run submitted again
with the same inputs reuses the first one's outputs, and says so; bad input is refused."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from stageflow.engine import TaskRegistry
from tests.support.api import finish_task_threads, submit, wait_for_run


def cached_echo(value: str, **cache: Any) -> dict[str, Any]:
    task = {"name": "e", "task": "echo", "params": {"value": value}}
    return {"dag": [{**task, "cache": {"ttlSeconds": 600, **cache}}]}


def finished(client: TestClient, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    run_id = submit(client, body)
    run = wait_for_run(client, run_id)
    assert run["status"]["phase"] == "Succeeded", run["status"]
    return run_id, run["status"]["tasks"]["e"]


def test_a_run_submitted_again_reuses_the_first_ones_outputs(client: TestClient) -> None:
    value = str(uuid.uuid4())  # entries outlive a test on a shared Redis: inputs of its own
    first_id, first = finished(client, cached_echo(value))
    second_id, second = finished(client, cached_echo(value))
    assert "cached" not in first
    assert first["attempts"] == 1
    assert second["cached"] is True
    assert second["cachedFrom"] == {"runId": first_id, "task": "e"}
    assert second["attempts"] == 0
    assert second["outputs"] == first["outputs"] == {"value": value}
    assert client.get(f"/workflow/{second_id}/status").json() == {"e": "Succeeded"}


def test_a_changed_param_misses_and_refresh_replaces(client: TestClient) -> None:
    value = str(uuid.uuid4())
    first_id, _ = finished(client, cached_echo(value))
    _, changed = finished(client, cached_echo(value + "-2"))
    refresh_id, refreshed = finished(client, {**cached_echo(value), "refresh": True})
    _, after = finished(client, cached_echo(value))
    assert "cached" not in changed
    assert "cached" not in refreshed
    assert after["cachedFrom"] == {"runId": refresh_id, "task": "e"}
    assert refresh_id != first_id


@pytest.mark.parametrize(
    ("cache", "detail"),
    [
        ({"key": "params.("}, "Task e: cache.key: not a CEL expression: 'params.('"),
        (
            {"key": "string(labels.x)"},
            "Task e: cache.key: 'string(labels.x)' reads 'labels'; it may read params",
        ),
    ],
)
def test_a_key_that_cannot_be_used_is_400_naming_it(
    client: TestClient, cache: dict[str, Any], detail: str
) -> None:
    response = client.post("/workflow", json=cached_echo("x", **cache))
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail)


def test_cache_on_an_approval_task_is_400(client: TestClient) -> None:
    body = {"dag": [{"name": "ok", "approval": {}, "cache": {"ttlSeconds": 60}}]}
    response = client.post("/workflow", json=body)
    assert response.status_code == 400
    assert response.json()["detail"] == "Task ok: an approval task runs nothing to cache"


@pytest.mark.parametrize("ttl", [0, 366 * 24 * 3600 + 1])
def test_a_ttl_out_of_range_is_422_naming_it(client: TestClient, ttl: int) -> None:
    response = client.post("/workflow", json=cached_echo("x", ttlSeconds=ttl))
    assert response.status_code == 422
    assert any(item["loc"][-1] == "ttlSeconds" for item in response.json()["detail"])


def test_two_replicas_on_one_redis_share_the_cache(redis_url: str, tasks: TaskRegistry) -> None:
    settings = ApiSettings(redis_url=redis_url, status_flush_seconds=0.01)
    before = set(threading.enumerate())
    with (
        TestClient(create_app(settings, tasks=tasks)) as one,
        TestClient(create_app(settings, tasks=tasks)) as other,
    ):
        first_id, _ = finished(one, cached_echo("shared"))
        _, second = finished(other, cached_echo("shared"))
    finish_task_threads(set(threading.enumerate()) - before)
    assert second["cachedFrom"] == {"runId": first_id, "task": "e"}
