"""Every endpoint and error code of design §8, through FastAPI's TestClient, on both stores."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from stageflow.engine import TaskRegistry
from tests.support.api import FINISHED, backend_of, read_events, submit, wait_for_run, wait_for_task
from tests.support.redis_server import free_port
from tests.support.workflows import SEED, sleeps


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_seed_workflow_verbatim(client: TestClient) -> None:
    response = client.post("/workflow", json=SEED)
    assert response.status_code == 202
    body = response.json()
    run_id = body["run_id"]
    assert uuid.UUID(run_id).version == 4
    assert body["status"] == "Pending"
    assert response.headers["location"] == f"/workflow/{run_id}"

    run = wait_for_run(client, run_id)
    assert run["status"]["phase"] == "Succeeded"
    assert client.get(f"/workflow/{run_id}/status").json() == {
        "task_a": "Succeeded",
        "task_b": "Succeeded",
        "task_c": "Succeeded",
    }
    tasks = run["status"]["tasks"]
    assert parse(tasks["task_c"]["startedAt"]) >= max(
        parse(tasks["task_a"]["finishedAt"]), parse(tasks["task_b"]["finishedAt"])
    )
    assert all(task["attempts"] == 1 for task in tasks.values())
    assert run["status"]["progress"] == "3/3"
    assert run["spec"]["workflow"][0]["tasks"][0] == {
        "name": "task_a",
        "task": "task_a",
        "params": {},
        "retries": 0,
        "retryBackoffSeconds": 1.0,
    }


def test_run_ids_are_unique(client: TestClient) -> None:
    ids = {submit(client, SEED) for _ in range(5)}
    assert len(ids) == 5


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"workflow": [{"type": "parallel", "tasks": ["task_a", "task_x"]}]},
            "Unknown task: task_x",
        ),
        (
            {"dag": [{"name": "a", "task": "task_a"}, {"name": "a", "task": "task_b"}]},
            "Duplicate task name: a",
        ),
        (
            {"dag": [{"name": "a", "task": "task_a", "dependsOn": ["zz"]}]},
            "Unknown dependency: a depends on zz",
        ),
        (
            {"dag": [{"name": "a", "task": "task_a", "dependsOn": ["a"]}]},
            "Dependency cycle: a -> a",
        ),
    ],
)
def test_400s_name_the_problem_and_store_nothing(
    client: TestClient, body: dict[str, Any], detail: str
) -> None:
    response = client.post("/workflow", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}
    assert client.get("/workflows").json()["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"workflow": SEED["workflow"], "dag": [{"name": "a", "task": "task_a"}]},
        {"workflow": "task_a"},
        {"workflow": [{"type": "parallel"}]},
        {"workflow": [{"type": "parallel", "tasks": [42]}]},
        {"dag": [{"name": "a", "task": "task_a", "timeoutSeconds": -1}]},
        [],
    ],
)
def test_malformed_bodies_are_422(client: TestClient, body: Any) -> None:
    response = client.post("/workflow", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/workflow", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/workflow/{id}"),
        ("GET", "/workflow/{id}/status"),
        ("GET", "/workflow/{id}/events"),
        ("POST", "/workflow/{id}/cancel"),
        ("DELETE", "/workflow/{id}"),
    ],
)
def test_unknown_run_ids_are_404(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path.format(id=uuid.uuid4()))
    assert response.status_code == 404
    assert response.json() == {"detail": "Workflow not found"}


def test_get_workflow_returns_the_whole_run(client: TestClient) -> None:
    run_id = submit(client, {"name": "nightly", "labels": {"team": "data"}, **SEED})
    run = wait_for_run(client, run_id)
    assert run["run_id"] == run_id
    assert run["name"] == "nightly"
    assert run["labels"] == {"team": "data"}
    assert parse(run["created_at"]) <= parse(run["status"]["startedAt"])
    assert set(run["status"]["tasks"]["task_a"]) >= {"phase", "attempts", "startedAt", "finishedAt"}
    assert run["cancel_requested"] is False


def test_failure_shows_in_status_and_message(client: TestClient) -> None:
    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [{"name": "boom", "task": "fail", "params": {"message": "no"}}],
            },
            {"type": "parallel", "tasks": ["task_c"]},
        ]
    }
    run = wait_for_run(client, submit(client, body))
    assert run["status"]["phase"] == "Failed"
    assert run["status"]["message"] == "Task boom failed: RuntimeError: no"
    assert run["status"]["tasks"]["task_c"]["phase"] == "Skipped"


def test_list_newest_first_filtered_and_paginated(client: TestClient) -> None:
    failing = {"workflow": [{"type": "parallel", "tasks": ["fail"]}]}
    ids = [submit(client, SEED), submit(client, failing), submit(client, SEED)]
    for run_id in ids:
        wait_for_run(client, run_id)

    # On the kubernetes backend the list is served from the Redis mirror, which follows
    # the WorkflowRuns within its lag (a GET of one run falls back to the WorkflowRun).
    deadline = time.monotonic() + 10
    while True:
        listed = client.get("/workflows").json()
        phases = [item["phase"] for item in listed["items"]]
        if (set(phases) <= FINISHED and len(phases) == len(ids)) or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert [item["run_id"] for item in listed["items"]] == ids[::-1]
    assert "next_cursor" not in listed
    assert listed["items"][0]["phase"] == "Succeeded"
    assert listed["items"][0]["progress"] == "3/3"

    failed = client.get("/workflows", params={"phase": "Failed"}).json()
    assert [item["run_id"] for item in failed["items"]] == [ids[1]]

    first = client.get("/workflows", params={"limit": 2}).json()
    assert [item["run_id"] for item in first["items"]] == [ids[2], ids[1]]
    rest = client.get("/workflows", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [item["run_id"] for item in rest["items"]] == [ids[0]]
    assert "next_cursor" not in rest  # absent on the last page


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"cursor": "bogus"}, 400),
        ({"limit": 0}, 422),
        ({"limit": 501}, 422),
        ({"phase": "Bored"}, 422),
    ],
)
def test_list_rejects_bad_parameters(
    client: TestClient, params: dict[str, Any], status: int
) -> None:
    response = client.get("/workflows", params=params)
    assert response.status_code == status
    assert response.json()["detail"]


def start_long_run(client: TestClient) -> str:
    """A run whose first stage sleeps 30 s and whose second (task_c) waits for it."""
    body = {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [{"name": "long", "task": "sleep", "params": {"seconds": 30}}],
            },
            {"type": "parallel", "tasks": ["task_c"]},
        ]
    }
    run_id = submit(client, body)
    wait_for_task(client, run_id, "long", "Running")
    return run_id


def test_cancel_a_running_run(client: TestClient) -> None:
    run_id = start_long_run(client)
    response = client.post(f"/workflow/{run_id}/cancel")
    assert response.status_code == 202
    assert response.json()["run_id"] == run_id
    run = wait_for_run(client, run_id)
    assert run["status"]["phase"] == "Cancelled"
    assert run["cancel_requested"] is True
    assert client.get(f"/workflow/{run_id}/status").json() == {
        "long": "Cancelled",
        "task_c": "Cancelled",
    }

    again = client.post(f"/workflow/{run_id}/cancel")
    assert again.status_code == 409
    assert again.json() == {"detail": "Workflow already finished (Cancelled)"}


def test_delete_removes_a_run_and_stops_it(client: TestClient) -> None:
    run_id = submit(client, sleeps(1, 30))
    wait_for_task(client, run_id, "s0", "Running")
    assert client.delete(f"/workflow/{run_id}").status_code == 204
    assert client.get(f"/workflow/{run_id}").status_code == 404
    assert client.delete(f"/workflow/{run_id}").status_code == 404
    assert run_id not in [item["run_id"] for item in client.get("/workflows").json()["items"]]


def test_events_stream_snapshot_then_updates_until_the_end(client: TestClient) -> None:
    run_id = submit(client, sleeps(2, 0.2, "sequential"))
    with client.stream("GET", f"/workflow/{run_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_events(response.iter_lines())
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "snapshot"
    assert events[0][1]["run_id"] == run_id
    assert set(kinds[1:]) == {"update"}
    assert events[-1][1]["phase"] == "Succeeded"
    seen = {
        (task, entry["phase"])
        for _, data in events[1:]
        for task, entry in data.get("tasks", {}).items()
    }
    assert ("s1", "Succeeded") in seen


def test_events_of_a_finished_run_is_its_snapshot(client: TestClient) -> None:
    run_id = submit(client, SEED)
    wait_for_run(client, run_id)
    with client.stream("GET", f"/workflow/{run_id}/events") as response:
        events = read_events(response.iter_lines())
    assert [kind for kind, _ in events] == ["snapshot"]
    assert events[0][1]["status"]["phase"] == "Succeeded"


def test_tasks_lists_the_registry(client: TestClient) -> None:
    tasks = {task["name"]: task for task in client.get("/tasks").json()}
    assert {"task_a", "task_b", "task_c", "task_d", "sleep", "fail", "echo", "http_get"} <= set(
        tasks
    )
    assert tasks["sleep"]["parameters"] == ["seconds"]
    assert tasks["sleep"]["is_async"] is True
    assert tasks["task_a"]["description"].startswith("Print and succeed")


def test_job_tasks_need_the_kubernetes_backend(client: TestClient) -> None:
    body = {"dag": [{"name": "a", "task": "task_a", "executor": "job"}]}
    response = client.post("/workflow", json=body)
    if backend_of(client) == "kubernetes":
        assert response.status_code == 202
        return
    assert response.status_code == 400
    assert response.json() == {
        "detail": "Task a uses executor 'job', which needs the kubernetes backend"
    }


def test_probes(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    if backend_of(client) == "local":
        assert ready.json() == {"status": "ok", "checks": {"store": "ok"}}
    else:
        assert ready.json()["checks"] == {"apiserver": "v1.20.2", "redis": "ok"}


def test_openapi_documents_the_request_format(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert "/workflow" in schema["paths"]
    assert "WorkflowRequest" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200


def test_redis_down_is_503_not_500(tasks: TaskRegistry) -> None:
    settings = ApiSettings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings, tasks=tasks)
    app.router.lifespan_context = _no_control_listener(app.router.lifespan_context)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "unavailable"
        response = client.get(f"/workflow/{uuid.uuid4()}")
        assert response.status_code == 503
        assert response.json()["detail"].startswith("Run store unavailable: Redis:")
        submitted = client.post("/workflow", json=SEED)
        assert submitted.status_code == 503


def _no_control_listener(lifespan: Any) -> Any:
    """The local backend waits for its control channel at start-up; with Redis down that
    wait would never end, so this test starts the app without awaiting it."""
    from contextlib import asynccontextmanager

    from stageflow.api.backends import LocalBackend

    @asynccontextmanager
    async def patched(app: Any) -> Any:
        original = LocalBackend.start

        async def start(self: LocalBackend) -> None:
            return None

        LocalBackend.start = start  # type: ignore[method-assign]
        try:
            async with lifespan(app):
                yield
        finally:
            LocalBackend.start = original  # type: ignore[method-assign]

    return patched


def test_task_logs_show_what_the_task_printed(client: TestClient) -> None:
    run_id = submit(client, SEED)
    wait_for_run(client, run_id)

    def log_of(task: str) -> str:
        response = client.get(f"/workflow/{run_id}/tasks/{task}/logs")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain")
        return response.text

    assert log_of("task_a") == "--- attempt 1 ---\nRunning task A\n"
    assert log_of("task_c") == "--- attempt 1 ---\nRunning task C\n"
    missing = client.get(f"/workflow/{run_id}/tasks/nope/logs")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Task not found: nope"}


def test_a_task_that_has_not_run_has_no_logs_yet(client: TestClient) -> None:
    run_id = start_long_run(client)
    response = client.get(f"/workflow/{run_id}/tasks/task_c/logs")
    assert response.status_code == 404
    assert response.json() == {"detail": "No logs yet for task task_c"}
    assert client.get(f"/workflow/{uuid.uuid4()}/tasks/x/logs").json() == {
        "detail": "Workflow not found"
    }
    client.post(f"/workflow/{run_id}/cancel")


def test_data_flows_between_tasks(client: TestClient) -> None:
    body = {
        "params": {"threshold": 2},
        "dag": [
            {"name": "list", "task": "echo", "params": {"ns": [1, 2, 3]}},
            {
                "name": "each",
                "task": "echo",
                "forEach": "{{ tasks.list.outputs.ns }}",
                "params": {"n": "{{ item }}"},
            },
            {
                "name": "gate",
                "task": "echo",
                "params": {"x": 1},
                "when": "{{ params.threshold }} > 5",
            },
            {
                "name": "loop",
                "task": "echo",
                "params": {"i": "{{ iteration }}"},
                "until": "{{ outputs.i }} >= {{ params.threshold }}",
                "maxIterations": 5,
            },
            {
                "name": "final",
                "task": "echo",
                "params": {"all": "{{ tasks.each.outputs }}", "i": "{{ tasks.loop.outputs.i }}"},
                "dependsOn": ["gate"],
            },
        ],
    }
    run = wait_for_run(client, submit(client, body))
    assert run["status"]["phase"] == "Succeeded"
    assert client.get(f"/workflow/{run['run_id']}/status").json() == {
        "list": "Succeeded",
        "each": "Succeeded",
        "gate": "Skipped",
        "loop": "Succeeded",
        "final": "Succeeded",
        "each[0]": "Succeeded",
        "each[1]": "Succeeded",
        "each[2]": "Succeeded",
    }
    tasks = run["status"]["tasks"]
    assert tasks["final"]["outputs"] == {"all": [{"n": 1}, {"n": 2}, {"n": 3}], "i": 2}
    assert tasks["each"]["outputs"] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert tasks["loop"]["iterations"] == 3
    assert tasks["gate"]["whenResult"] is False
    assert run["spec"]["params"] == {"threshold": 2}


def test_bad_references_are_400(client: TestClient) -> None:
    body = {"dag": [{"name": "c", "task": "echo", "params": {"x": "{{ tasks.ghost.outputs.k }}"}}]}
    response = client.post("/workflow", json=body)
    assert response.status_code == 400
    assert response.json() == {"detail": "Unknown reference: {{ tasks.ghost.outputs.k }} in task c"}
