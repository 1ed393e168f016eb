"""Approval tasks through the HTTP API, on every backend and store: the task waits, an
approval with outputs feeds the tasks after it, a rejection fails the run, and bad
answers get a 4xx naming the problem."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.api import submit, wait_for_run, wait_for_task

GATE = {
    "name": "approve-deploy",
    "approval": {
        "timeoutSeconds": 3600,
        "inputs": {
            "type": "object",
            "properties": {"version": {"type": "string"}},
            "required": ["version"],
            "additionalProperties": False,
        },
    },
}
BODY = {
    "workflow": [
        {
            "type": "sequential",
            "tasks": [
                "task_a",
                GATE,
                {
                    "name": "deploy",
                    "task": "echo",
                    "params": {"version": "{{ tasks.approve-deploy.outputs.version }}"},
                },
            ],
        }
    ]
}


def waiting_run(client: TestClient) -> str:
    run_id = submit(client, BODY)
    wait_for_task(client, run_id, "approve-deploy", "Waiting")
    return run_id


def approve(client: TestClient, run_id: str, body: Any = None, task: str = "approve-deploy") -> Any:
    return client.post(f"/workflow/{run_id}/tasks/{task}/approve", json=body)


def test_an_approval_with_outputs_feeds_the_deploy(client: TestClient) -> None:
    run_id = waiting_run(client)
    run = client.get(f"/workflow/{run_id}").json()
    assert run["status"]["phase"] == "Running"
    assert run["status"]["tasks"]["deploy"]["phase"] == "Pending"
    body = {"comment": "ship it", "outputs": {"version": "1.4.2"}}
    assert approve(client, run_id, body).status_code == 202
    done = wait_for_run(client, run_id)
    assert done["status"]["phase"] == "Succeeded"
    gate = done["status"]["tasks"]["approve-deploy"]
    assert gate["message"] == "approved: ship it"  # anonymous: no auth on this API
    assert gate["decision"]["comment"] == "ship it"
    assert gate["outputs"] == {"version": "1.4.2"}
    assert done["status"]["tasks"]["deploy"]["outputs"] == {"version": "1.4.2"}
    again = approve(client, run_id, body)
    assert again.status_code == 409
    assert again.json() == {
        "detail": "Task approve-deploy is not waiting for approval (it is Succeeded)"
    }


def test_a_rejection_fails_the_run(client: TestClient) -> None:
    run_id = waiting_run(client)
    response = client.post(
        f"/workflow/{run_id}/tasks/approve-deploy/reject", json={"comment": "not on a Friday"}
    )
    assert response.status_code == 202
    done = wait_for_run(client, run_id)
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["tasks"]["approve-deploy"]["message"] == "rejected: not on a Friday"
    assert done["status"]["tasks"]["deploy"]["phase"] == "Skipped"


def test_bad_answers_are_4xx_naming_the_problem(client: TestClient) -> None:
    run_id = waiting_run(client)
    unfit = approve(client, run_id, {"outputs": {"version": 3}})
    assert unfit.status_code == 400
    assert unfit.json() == {
        "detail": "Outputs for task approve-deploy do not fit its inputs: "
        "version: 3 is not of type 'string'"
    }
    missing = approve(client, run_id, {})
    assert missing.status_code == 400
    assert "'version' is a required property" in missing.json()["detail"]
    not_a_gate = approve(client, run_id, task="task_a")
    assert not_a_gate.status_code == 409
    assert not_a_gate.json() == {"detail": "Task task_a is not an approval task"}
    nowhere = approve(client, run_id, task="nope")
    assert nowhere.status_code == 404
    assert nowhere.json() == {"detail": f"No task nope in run {run_id}"}
    early = approve(client, run_id, task="deploy")
    assert early.status_code == 409
    rejected_with_outputs = client.post(
        f"/workflow/{run_id}/tasks/approve-deploy/reject", json={"outputs": {"version": "1"}}
    )
    assert rejected_with_outputs.status_code == 400
    assert rejected_with_outputs.json() == {"detail": "A rejection takes no outputs"}
    # nothing was recorded: it still waits
    run = client.get(f"/workflow/{run_id}").json()
    assert run["status"]["tasks"]["approve-deploy"]["phase"] == "Waiting"
    assert client.post(f"/workflow/{run_id}/cancel").status_code == 202
