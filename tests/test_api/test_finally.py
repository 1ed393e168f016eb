"""`finally` tasks through the HTTP API, on every backend and store: they run after the
main graph whatever its outcome, a plain cancel runs them and a forced one does not."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.api import submit, wait_for_run, wait_for_task

NOTIFY = {"name": "notify", "task": "echo", "params": {"outcome": "{{ run.phase }}"}}


def test_they_run_after_a_failed_main_graph(client: TestClient) -> None:
    body = {
        "workflow": [{"type": "sequential", "tasks": ["task_a", "fail", "task_b"]}],
        "finally": [NOTIFY],
    }
    run_id = submit(client, body)
    run = wait_for_run(client, run_id)
    assert run["status"]["phase"] == "Failed"
    assert run["status"]["mainPhase"] == "Failed"
    assert run["status"]["tasks"]["notify"]["outputs"] == {"outcome": "Failed"}
    assert run["spec"]["finally"][0]["name"] == "notify"
    assert client.get(f"/workflow/{run_id}/status").json() == {
        "task_a": "Succeeded",
        "fail": "Failed",
        "task_b": "Skipped",
        "notify": "Succeeded",
    }


@pytest.mark.parametrize(("body", "notify"), [(None, "Succeeded"), ({"force": True}, "Cancelled")])
def test_a_cancel_runs_them_unless_forced(
    client: TestClient, body: dict[str, Any] | None, notify: str
) -> None:
    run_id = submit(
        client,
        {
            "dag": [{"name": "long", "task": "sleep", "params": {"seconds": 30}}],
            "finally": [NOTIFY],
        },
    )
    wait_for_task(client, run_id, "long", "Running")
    assert client.post(f"/workflow/{run_id}/cancel", json=body).status_code == 202
    run = wait_for_run(client, run_id)
    assert run["status"]["phase"] == "Cancelled"
    assert run["status"]["tasks"]["long"]["phase"] == "Cancelled"
    assert run["status"]["tasks"]["notify"]["phase"] == notify


def test_finally_tasks_in_a_cycle_are_400_naming_it(client: TestClient) -> None:
    body = {
        "dag": [{"name": "a", "task": "task_a"}],
        "finally": [
            {"name": "x", "task": "task_b", "dependsOn": ["y"]},
            {"name": "y", "task": "task_c", "dependsOn": ["x"]},
        ],
    }
    response = client.post("/workflow", json=body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Dependency cycle: ")


def test_a_cancel_body_with_an_unknown_field_is_422(client: TestClient) -> None:
    run_id = submit(client, {"dag": [{"name": "long", "task": "sleep", "params": {"seconds": 5}}]})
    response = client.post(f"/workflow/{run_id}/cancel", json={"forced": True})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "forced"
    client.post(f"/workflow/{run_id}/cancel")
