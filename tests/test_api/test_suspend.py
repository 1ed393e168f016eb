"""Suspend and resume through the HTTP API, on every backend and store."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.api import submit, wait_for_run, wait_for_task
from tests.support.polling import wait_until

BODY = {
    "workflow": [
        {
            "type": "sequential",
            "tasks": [
                {"name": "first", "task": "sleep", "params": {"seconds": 2}},
                {"name": "second", "task": "task_a"},
            ],
        }
    ]
}


def test_a_suspended_run_starts_nothing_new_until_resumed(client: TestClient) -> None:
    run_id = submit(client, BODY)
    wait_for_task(client, run_id, "first", "Running")
    assert client.post(f"/workflow/{run_id}/suspend").status_code == 202
    assert client.post(f"/workflow/{run_id}/suspend").status_code == 202  # no change
    wait_until(lambda: client.get(f"/workflow/{run_id}").json()["status"].get("suspended"))
    wait_for_task(client, run_id, "first", "Succeeded")  # what ran finished
    run = client.get(f"/workflow/{run_id}").json()
    assert run["status"]["phase"] == "Running"
    assert run["status"]["tasks"]["second"]["phase"] == "Pending"  # it ended already: held
    assert client.post(f"/workflow/{run_id}/resume").status_code == 202
    done = wait_for_run(client, run_id)
    assert done["status"]["phase"] == "Succeeded"
    assert "suspended" not in done["status"]
    assert client.post(f"/workflow/{run_id}/suspend").status_code == 409
    assert client.post(f"/workflow/{run_id}/resume").json() == {
        "detail": "Workflow already finished (Succeeded)"
    }
