"""Big runs through the HTTP API, on every backend: a fan-out of thousands runs, `/status`
has every entry, `GET /workflow/{id}` summarises (or lists what is asked for), updates
stream counts rather than every instance, and past the limits a 400 names the setting."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from stageflow.api.streaming.socket import PROTOCOL
from tests.support.api import submit, wait_for_run

COUNT = 3000


def fan_out(count: int = COUNT, *, bad: int = 0) -> dict[str, Any]:
    """`count` instances of noop, and `bad` instances that fail (the rest go on)."""
    dag: list[dict[str, Any]] = [
        {"name": "first", "task": "noop"},
        {"name": "big", "task": "noop", "forEach": {"count": count}, "dependsOn": ["first"]},
    ]
    if bad:
        dag.append(
            {
                "name": "bad",
                "task": "fail",
                "params": {"message": "item {{ item }} is bad"},
                "forEach": {"count": bad},
            }
        )
    return {"failFast": False, "dag": dag}


def test_a_big_fan_out_runs_and_is_read_whole_summarised_or_by_phase(
    client: TestClient,
) -> None:
    run_id = submit(client, fan_out(bad=2))
    run = wait_for_run(client, run_id, timeout=120)
    status = run["status"]
    entries = COUNT + 5  # first, big, its instances, bad and its two
    assert status["phase"] == "Failed"
    assert status["progress"] == f"{entries}/{entries}"
    # the default: declared tasks, the instances that need a look, and counts
    assert set(status["tasks"]) == {"first", "big", "bad", "bad[0]", "bad[1]"}
    assert "item 1 is bad" in status["tasks"]["bad[1]"]["message"]
    assert status["fanouts"] == {
        "big": {"total": COUNT, "phases": {"Succeeded": COUNT}},
        "bad": {"total": 2, "phases": {"Failed": 2}},
    }
    assert status["omitted"] == COUNT
    whole = client.get(f"/workflow/{run_id}", params={"tasks": "all"}).json()["status"]
    assert len(whole["tasks"]) == entries
    assert "omitted" not in whole
    failed = client.get(f"/workflow/{run_id}", params={"tasks": "failed"}).json()["status"]
    assert set(failed["tasks"]) == {"bad", "bad[0]", "bad[1]"}
    some = client.get(f"/workflow/{run_id}", params={"tasks": "all", "limit": 10}).json()
    # the declared tasks, then at most 10 instances of each forEach task
    assert len(some["status"]["tasks"]) == 3 + 10 + 2
    assert some["status"]["omitted"] == entries - 15
    phases = client.get(f"/workflow/{run_id}/status").json()
    assert len(phases) == entries
    assert phases["big[2999]"] == "Succeeded"
    bad = client.get(f"/workflow/{run_id}", params={"tasks": "Done,Failed"})
    assert bad.status_code == 400
    assert "Unknown task phase in tasks: Done" in bad.json()["detail"]


def messages(client: TestClient, run_id: str) -> list[dict[str, Any]]:
    """Every message of the run's WebSocket, up to its `end`, then until it closes."""
    received: list[dict[str, Any]] = []
    with client.websocket_connect(f"/workflow/{run_id}/ws", subprotocols=[PROTOCOL]) as socket:
        while not received or received[-1]["event"] != "end":
            received.append(json.loads(socket.receive_text()))
        with contextlib.suppress(WebSocketDisconnect):
            socket.receive_text()  # the close that follows the end
    return received


def test_updates_of_a_big_run_carry_counts_not_every_instance(client: TestClient) -> None:
    body = fan_out()
    body["dag"][0] = {"name": "first", "task": "sleep", "params": {"seconds": 1}}
    run_id = submit(client, body)  # the socket connects while `first` runs
    received = messages(client, run_id)
    updates = [message["data"] for message in received if message["event"] == "update"]
    assert updates, "no update"
    for update in updates:
        instances = [task for task_id, task in update["tasks"].items() if "[" in task_id]
        assert all(task["phase"] in ("Running", "Waiting", "Failed") for task in instances)
    assert updates[-1]["fanouts"] == {"big": {"total": COUNT, "phases": {"Succeeded": COUNT}}}
    assert sum(update.get("omitted", 0) for update in updates) >= COUNT
    # the snapshot of the run, big now, is its summary
    again = messages(client, run_id)
    snapshot = again[0]["data"]["status"]
    assert set(snapshot["tasks"]) == {"first", "big"}
    assert snapshot["omitted"] == COUNT
    assert snapshot["fanouts"] == {"big": {"total": COUNT, "phases": {"Succeeded": COUNT}}}


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"dag": [{"name": "big", "task": "noop", "forEach": {"count": 10_001}}]},
            "Task big: forEach has 10001 items (at most 10000, STAGEFLOW_MAX_FOREACH_ITEMS)",
        ),
        (
            {"dag": [{"name": f"t{index}", "task": "noop"} for index in range(2001)]},
            "Too many tasks: 2001 (at most 2000 per run, STAGEFLOW_MAX_TASKS)",
        ),
        (
            {
                "dag": [
                    {"name": f"f{index}", "task": "noop", "forEach": {"count": 10_000}}
                    for index in range(2)
                ]
            },
            "Too many task instances: 20002 tasks and forEach items (at most 12000 per run, "
            "STAGEFLOW_MAX_TASK_INSTANCES)",
        ),
        (
            {
                "dag": [
                    {"name": f"t{index}", "task": "echo", "params": {"text": "x" * 60_000}}
                    for index in range(7)
                ]
            },
            "Workflow too large to store: 420694 bytes normalised (at most 393216, "
            "STAGEFLOW_MAX_SPEC_BYTES)",
        ),
    ],
)
def test_past_the_limits_a_400_names_the_setting(
    client: TestClient, body: dict[str, Any], detail: str
) -> None:
    response = client.post("/workflow", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == detail


def test_a_dag_of_2000_tasks_beside_a_fan_out_of_10000_runs_at_the_default_limits(
    client: TestClient,
) -> None:
    """The default limits' largest run: 2,000 declared tasks (a 1,999-task wide stage of
    the DAG and a fan-out), 10,000 instances; it runs, and a summary of it is small."""
    dag: list[dict[str, Any]] = [{"name": f"t{index:04d}", "task": "noop"} for index in range(1999)]
    dag.append(
        {"name": "big", "task": "noop", "forEach": {"count": 10_000}, "dependsOn": ["t0000"]}
    )
    run_id = submit(client, {"dag": dag})
    run = wait_for_run(client, run_id, timeout=300)
    assert run["status"]["phase"] == "Succeeded", run["status"].get("message")
    assert run["status"]["progress"] == "12000/12000"
    assert len(run["status"]["tasks"]) == 2000  # the declared tasks; instances counted
    assert run["status"]["fanouts"]["big"] == {"total": 10_000, "phases": {"Succeeded": 10_000}}
    assert len(json.dumps(run)) < 600_000
