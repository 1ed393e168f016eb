"""`POST /workflow/{id}/retry` on every backend and store: the same run id, in place; what
succeeded never runs again; the status keeps each retry; bad requests get a 4xx naming
the problem. On Kubernetes the API only asks (spec.retryRequest) and the operator acts."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import submit, wait_for_run, wait_for_task

# The third task fails while the run's `broken` param is true; a retry that overrides the
# param lets the run through (its `when` skips the task), as a fixed input would.
BODY = {
    "params": {"broken": True},
    "workflow": [
        {
            "type": "sequential",
            "tasks": [
                "task_a",
                "task_b",
                {"name": "check", "task": "fail", "when": "{{ params.broken }}"},
                "task_c",
            ],
        }
    ],
}


def failed_run(client: TestClient, body: dict[str, Any] = BODY) -> dict[str, Any]:
    run_id = submit(client, body)
    run = wait_for_run(client, run_id)
    assert run["status"]["phase"] == "Failed"
    return run


def test_a_retry_with_new_params_re_runs_only_what_failed(client: TestClient) -> None:
    before = failed_run(client)
    run_id = before["run_id"]
    response = client.post(f"/workflow/{run_id}/retry", json={"params": {"broken": False}})
    assert response.status_code == 202, response.text
    assert response.json() == {"run_id": run_id, "status": "Pending"}
    after = wait_for_run(client, run_id)
    assert after["status"]["phase"] == "Succeeded"
    tasks = after["status"]["tasks"]
    for kept in ("task_a", "task_b"):  # never ran again
        assert tasks[kept] == before["status"]["tasks"][kept]
    assert tasks["check"]["phase"] == "Skipped"
    assert tasks["task_c"]["phase"] == "Succeeded"
    assert after["spec"]["params"] == {"broken": False}
    [entry] = after["status"]["retries"]
    assert entry["previousPhase"] == "Failed"
    assert entry["reset"] == ["check", "task_c"]
    assert entry["params"] == {"broken": False}
    assert entry["messages"]["check"] == "RuntimeError: failed on purpose"


def test_from_re_runs_a_succeeded_task_and_all_after_it(client: TestClient) -> None:
    before = failed_run(client)
    run_id = before["run_id"]
    body = {"from": "task_b", "params": {"broken": False}}
    assert client.post(f"/workflow/{run_id}/retry", json=body).status_code == 202
    after = wait_for_run(client, run_id)
    assert after["status"]["phase"] == "Succeeded"
    assert after["status"]["tasks"]["task_a"] == before["status"]["tasks"]["task_a"]
    assert after["status"]["tasks"]["task_b"]["attempts"] == 2
    assert after["status"]["retries"][0]["fromTask"] == "task_b"


def test_retrying_what_is_not_failed_or_cancelled_is_409(client: TestClient) -> None:
    running = submit(client, {"dag": [{"name": "nap", "task": "sleep", "params": {"seconds": 30}}]})
    wait_for_task(client, running, "nap", "Running")
    response = client.post(f"/workflow/{running}/retry")
    assert response.status_code == 409
    assert response.json()["detail"] == (
        "Run is Running: only a Failed or Cancelled run can be retried"
    )
    assert client.post(f"/workflow/{running}/cancel").status_code == 202
    assert wait_for_run(client, running)["status"]["phase"] == "Cancelled"
    assert client.post(f"/workflow/{running}/retry", json={"from": "nap"}).status_code == 202
    assert client.post(f"/workflow/{running}/cancel").status_code == 202  # stop it again


def test_bad_retries_are_4xx_naming_the_problem(client: TestClient) -> None:
    run_id = failed_run(client)["run_id"]
    unknown = client.post(f"/workflow/{run_id}/retry", json={"from": "nine"})
    assert unknown.status_code == 400
    assert unknown.json() == {"detail": "Unknown task: nine (retry from)"}
    extra = client.post(f"/workflow/{run_id}/retry", json={"form": "check"})
    assert extra.status_code == 422
    assert extra.json()["detail"][0]["loc"][-1] == "form"
    missing = client.post("/workflow/6f0a1c1e-0000-4000-8000-000000000000/retry")
    assert missing.status_code == 404
    # nothing was half-done: the run is as it ended
    assert wait_for_run(client, run_id)["status"].get("retries") is None


def test_two_retries_at_once_give_one_retry_and_one_409(client: TestClient) -> None:
    run_id = failed_run(client)["run_id"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda _: client.post(f"/workflow/{run_id}/retry").status_code, range(2))
        )
    assert sorted(answers) == [202, 409]
    after = wait_for_run(client, run_id)
    assert after["status"]["phase"] == "Failed"  # the same failure again
    assert len(after["status"]["retries"]) == 1
    assert after["status"]["tasks"]["task_a"]["attempts"] == 1
