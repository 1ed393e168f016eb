"""`continueOn: {failed: true}` through the HTTP API, on every backend and store: the run
goes on past the failure, succeeds, and says which failures it tolerated."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.support.api import submit, wait_for_run

FLAKY = {
    "name": "flaky",
    "task": "fail",
    "params": {"message": "boom"},
    "continueOn": {"failed": True},
}


def test_a_tolerated_failure_lets_the_sequence_go_on_and_the_run_succeed(
    client: TestClient,
) -> None:
    body = {"workflow": [{"type": "sequential", "tasks": ["task_a", FLAKY, "task_b"]}]}
    run_id = submit(client, body)
    run = wait_for_run(client, run_id)
    assert run["status"]["phase"] == "Succeeded"
    assert run["status"]["toleratedFailures"] == ["flaky"]
    assert run["status"]["message"].startswith("Succeeded past a tolerated failure: task flaky")
    assert run["spec"]["workflow"][0]["tasks"][1]["continueOn"] == {"failed": True}
    assert client.get(f"/workflow/{run_id}/status").json() == {
        "task_a": "Succeeded",
        "flaky": "Failed",
        "task_b": "Succeeded",
    }


def test_continue_on_with_an_unknown_outcome_is_422_naming_it(client: TestClient) -> None:
    body = {"dag": [{"name": "x", "task": "fail", "continueOn": {"errored": True}}]}
    response = client.post("/workflow", json=body)
    assert response.status_code == 422
    assert any(item["loc"][-1] == "errored" for item in response.json()["detail"])
