"""Live streams (issue 12): a task's log followed while it runs, and the run's WebSocket.

Following is shown against a real `stageflow api` process (TestClient buffers a
streamed body until it ends, so it cannot show a chunk arriving while the task
still runs): a task prints a line, then waits for a file the test creates only
after it has read that line, with the task still Running.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from stageflow.api import create_app
from stageflow.api.config import ApiSettings
from stageflow.api.streaming.logs import OVERLAP_CHARS, LogDiff
from stageflow.api.streaming.socket import PROTOCOL, TOKEN_PROTOCOL_PREFIX
from stageflow.client import AsyncClient, Client
from stageflow.engine import TaskRegistry
from tests.support.api import submit, wait_for_run
from tests.support.live_api import running_api
from tests.support.orphans import die_with_parent
from tests.support.workflows import SEED

EXTRA_TASKS = "tests.fixtures.extra_tasks"


def gated(gate: Path) -> dict[str, Any]:
    return {"dag": [{"name": "talker", "task": "print_until", "params": {"gate": str(gate)}}]}


@pytest.fixture(params=["memory", "redis"])
def live_api(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    with running_api(redis_url, task_modules=EXTRA_TASKS) as client:
        yield client


def test_logs_follow_streams_a_running_task_until_it_ends(
    live_api: httpx.Client, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    run_id = submit(live_api, gated(gate))
    with Client(str(live_api.base_url)) as client:
        chunks = client.follow_logs(run_id, "talker")
        seen = ""
        while "first line" not in seen:
            seen += next(chunks)
        assert client.status(run_id)["talker"] == "Running"  # seen while it runs
        gate.touch()
        seen += "".join(chunks)  # ends by itself when the task ends
        assert client.status(run_id)["talker"] == "Succeeded"
    assert seen == "--- attempt 1 ---\nfirst line\nlast line\n"


def test_cli_logs_f_follows_a_running_task(live_api: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run_id = submit(live_api, gated(gate))
    process = subprocess.Popen(
        [sys.executable, "-m", "stageflow.cli", "logs", run_id, "talker", "-f"],
        env={"STAGEFLOW_URL": str(live_api.base_url), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=die_with_parent,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline(), process.stdout.readline()]
    assert lines == ["--- attempt 1 ---\n", "first line\n"]
    assert process.poll() is None
    gate.touch()
    rest, _ = process.communicate(timeout=60)
    assert rest == "last line\n"
    assert process.returncode == 0


def test_following_an_unknown_task_or_run_is_404(live_api: httpx.Client) -> None:
    run_id = submit(live_api, SEED)
    response = live_api.get(f"/workflow/{run_id}/tasks/nope/logs", params={"follow": True})
    assert response.status_code == 404
    assert response.json() == {"detail": "Task not found: nope"}
    other = live_api.get("/workflow/0123/tasks/task_a/logs", params={"follow": True})
    assert other.status_code == 404


def test_following_a_finished_task_gives_its_log_and_ends(live_api: httpx.Client) -> None:
    run_id = submit(live_api, SEED)
    wait_for_run(live_api, run_id)
    followed = live_api.get(f"/workflow/{run_id}/tasks/task_c/logs", params={"follow": "true"})
    assert followed.text == live_api.get(f"/workflow/{run_id}/tasks/task_c/logs").text
    assert "Running task C" in followed.text


# -- the WebSocket ----------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def app_client(request: pytest.FixtureRequest, tasks: TaskRegistry) -> Iterator[TestClient]:
    redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    app = create_app(ApiSettings(redis_url=redis_url, status_flush_seconds=0.01), tasks=tasks)
    with TestClient(app) as client:
        yield client


def messages_until_closed(socket: Any) -> list[dict[str, Any]]:
    """Every message, then the close, which must be a normal one (1000)."""
    received: list[dict[str, Any]] = []
    code = None
    while code is None:
        try:
            received.append(json.loads(socket.receive_text()))
        except WebSocketDisconnect as closed:
            code = closed.code
    assert code == 1000
    return received


def test_the_websocket_sends_events_and_logs_then_closes(app_client: TestClient) -> None:
    run_id = submit(app_client, SEED)
    with app_client.websocket_connect(f"/workflow/{run_id}/ws", subprotocols=[PROTOCOL]) as ws:
        assert ws.accepted_subprotocol == PROTOCOL
        received = messages_until_closed(ws)
    kinds = [message["event"] for message in received]
    assert kinds[0] == "snapshot"
    assert kinds[-1] == "end"
    assert received[0]["data"]["run_id"] == run_id
    last_update = [m for m in received if m["event"] == "update"]
    final = received[0]["data"]["status"] if not last_update else last_update[-1]["data"]
    assert final["phase"] == "Succeeded"
    logs = {m["task"]: m["data"] for m in received if m["event"] == "log"}
    assert logs == {
        task: f"--- attempt 1 ---\nRunning task {task[-1].upper()}\n"
        for task in ("task_a", "task_b", "task_c")
    }


def test_the_websocket_of_an_unknown_run_closes_4404(app_client: TestClient) -> None:
    with (
        app_client.websocket_connect("/workflow/nope/ws") as ws,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        ws.receive_text()
    assert (closed.value.code, closed.value.reason) == (4404, "Workflow not found")


def token_protocol(token: str) -> str:
    return TOKEN_PROTOCOL_PREFIX + base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")


def test_the_websocket_takes_the_token_as_a_subprotocol_or_header(
    tasks: TaskRegistry, tmp_path: Path
) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("viewer-token vera viewer\nadmin-token ed editor\n")
    settings = ApiSettings(auth_mode="token", auth_tokens_file=tokens, status_flush_seconds=0.01)
    with TestClient(create_app(settings, tasks=tasks)) as client:
        admin = {"Authorization": "Bearer admin-token"}
        run_id = client.post("/workflow", json=SEED, headers=admin).json()["run_id"]
        path = f"/workflow/{run_id}/ws"
        for offered, code in (([], 4401), ([token_protocol("wrong")], 4401)):
            with (
                client.websocket_connect(path, subprotocols=[PROTOCOL, *offered]) as ws,
                pytest.raises(WebSocketDisconnect) as closed,
            ):
                ws.receive_text()
            assert closed.value.code == code
        viewer = [PROTOCOL, token_protocol("viewer-token")]
        with client.websocket_connect(path, subprotocols=viewer) as ws:
            assert ws.accepted_subprotocol == PROTOCOL  # the token is never echoed
            assert messages_until_closed(ws)[-1] == {"event": "end"}
        with client.websocket_connect(path, headers=admin) as ws:
            assert messages_until_closed(ws)[0]["data"]["run_id"] == run_id


# -- what is new in a log ---------------------------------------------------------------------


def test_log_diff_sends_what_was_appended() -> None:
    diff = LogDiff()
    assert diff.next("a\n") == "a\n"
    assert diff.next("a\nb\n") == "b\n"
    assert diff.next("a\nb\n") == ""


def test_log_diff_finds_its_place_when_the_head_was_dropped() -> None:
    diff = LogDiff()
    body = "".join(f"line {i}\n" for i in range(100))
    diff.next(body)
    shifted = "[40 earlier characters dropped]\n" + body[40:] + "more\n"
    assert len(body) > OVERLAP_CHARS
    assert diff.next(shifted) == "more\n"


def test_log_diff_sends_a_new_attempt_whole() -> None:
    diff = LogDiff()
    diff.next("--- attempt 1 ---\nboom\n")
    assert diff.next("--- attempt 2 ---\n") == "--- attempt 2 ---\n"


def test_follow_and_websocket_on_every_backend(client: TestClient) -> None:
    """Memory, Redis and the kubernetes backend (e2e): a finished task's followed log is its
    log, and the WebSocket ends with every task's log after the run's events."""
    run_id = submit(client, SEED)
    wait_for_run(client, run_id)
    followed = client.get(f"/workflow/{run_id}/tasks/task_a/logs", params={"follow": "true"})
    assert followed.status_code == 200
    assert "Running task A" in followed.text
    assert followed.text == client.get(f"/workflow/{run_id}/tasks/task_a/logs").text
    with client.websocket_connect(f"/workflow/{run_id}/ws") as ws:
        received = messages_until_closed(ws)
    assert received[0]["event"] == "snapshot"
    assert received[-1] == {"event": "end"}
    logged = {m["task"] for m in received if m["event"] == "log"}
    assert logged == {"task_a", "task_b", "task_c"}


async def test_the_async_client_follows_a_log(live_api: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run_id = submit(live_api, gated(gate))
    async with AsyncClient(str(live_api.base_url)) as client:
        seen = ""
        chunks = client.follow_logs(run_id, "talker")
        async for text in chunks:
            seen += text
            if "first line" in seen:
                break
        assert (await client.status(run_id))["talker"] == "Running"
        gate.touch()
        async for text in client.follow_logs(run_id, "talker"):
            seen = text if text.startswith("---") else seen + text
        await chunks.aclose()
    assert seen.endswith("first line\nlast line\n")
