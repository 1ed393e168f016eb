"""`stageflow.client.Client` against a real API on every backend."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import httpx
import pytest

from stageflow.client import (
    ApiError,
    Client,
    ConflictError,
    Dag,
    NotFoundError,
    RunEvent,
    RunPhase,
    RunRecord,
    Submitted,
    Task,
    TaskPhase,
    UnreachableError,
    apply,
)
from tests.support.polling import wait_until
from tests.support.workflows import SEED, sleeping


@pytest.fixture
def client(api_url: str) -> Iterator[Client]:
    with Client(api_url) as client:
        yield client


def test_submit_wait_get_and_status_are_typed(client: Client) -> None:
    submitted = client.submit(SEED)
    assert isinstance(submitted, Submitted)
    record = client.wait(submitted.run_id, timeout=60)
    assert isinstance(record, RunRecord)
    assert record.run_id == submitted.run_id
    assert record.status.phase is RunPhase.SUCCEEDED
    assert record.status.progress == "3/3"
    assert client.status(submitted.run_id) == {
        "task_a": TaskPhase.SUCCEEDED,
        "task_b": TaskPhase.SUCCEEDED,
        "task_c": TaskPhase.SUCCEEDED,
    }
    assert client.get(submitted.run_id).status.tasks["task_c"].attempts == 1


def test_events_are_a_snapshot_then_updates_that_fold_into_the_run(client: Client) -> None:
    run_id = client.submit(
        {
            "dag": [
                {"name": "a", "task": "sleep", "params": {"seconds": 0.3}},
                {"name": "b", "task": "task_b", "dependsOn": ["a"]},
            ]
        }
    ).run_id
    events = list(client.events(run_id))
    assert isinstance(events[0], RunRecord)
    assert all(isinstance(event, RunEvent) for event in events[1:])
    assert len(events) > 1
    folded: RunRecord | None = None
    for event in events:
        folded = apply(folded, event)
    assert folded is not None
    assert folded.status.phase is RunPhase.SUCCEEDED
    assert folded.status.task_phases() == client.get(run_id).status.task_phases()


def test_a_builder_workflow_runs_with_data_between_tasks(client: Client) -> None:
    profile = Task("profile", "echo", params={"rows": 3})
    report = Task("report", "echo", params={"rows": profile.output("rows")})
    profile >> report
    run_id = client.submit(Dag(report, name=f"built-{uuid.uuid4().hex[:6]}")).run_id
    record = client.wait(run_id, timeout=60)
    assert record.status.phase is RunPhase.SUCCEEDED
    assert record.status.tasks["report"].outputs == {"rows": 3}


def test_list_walks_every_page_newest_first(client: Client) -> None:
    name = f"paged-{uuid.uuid4().hex[:6]}"
    run_ids = [client.submit({**SEED, "name": name}).run_id for _ in range(5)]
    for run_id in run_ids:
        client.wait(run_id, timeout=60)

    def mine() -> list[str]:
        return [run.run_id for run in client.list(limit=None, page_size=2) if run.name == name]

    # On the kubernetes backend the list is read from the Redis mirror, which follows the
    # WorkflowRuns by its write window (docs/http-api.md); `wait` may have read a run from
    # the WorkflowRun itself. So wait, bounded, for all five to be listed, then the order.
    wait_until(lambda: len(mine()) == len(run_ids), within=30)
    assert mine() == run_ids[::-1]
    assert len(list(client.list(limit=3, page_size=2))) == 3
    assert all(run.phase is RunPhase.SUCCEEDED for run in client.list(RunPhase.SUCCEEDED))


def test_a_forced_cancel_cancels_the_finally_tasks_too(client: Client) -> None:
    body = {
        **sleeping(60),
        "finally": [{"name": "cleanup", "task": "sleep", "params": {"seconds": 60}}],
    }
    run_id = client.submit(body).run_id
    wait_until(lambda: client.status(run_id).get("s0") == "Running", within=30)
    client.cancel(run_id)
    wait_until(lambda: client.status(run_id).get("cleanup") == "Running", within=30)
    client.cancel(run_id, force=True)
    record = client.wait(run_id, timeout=60)
    assert record.status.phase is RunPhase.CANCELLED
    assert record.status.main_phase is RunPhase.CANCELLED
    assert record.status.task_phases() == {"s0": "Cancelled", "cleanup": "Cancelled"}


def test_retry_from_the_failure(client: Client) -> None:
    body = {
        "params": {"broken": True},
        "dag": [
            {"name": "first", "task": "task_a"},
            {
                "name": "check",
                "task": "fail",
                "when": "{{ params.broken }}",
                "dependsOn": ["first"],
            },
        ],
    }
    run_id = client.submit(body).run_id
    assert client.wait(run_id, timeout=30).status.phase is RunPhase.FAILED
    submitted = client.retry(run_id, params={"broken": False})
    assert (submitted.run_id, submitted.status) == (run_id, RunPhase.PENDING)
    record = client.wait(run_id, timeout=30)
    assert record.status.phase is RunPhase.SUCCEEDED
    assert record.status.tasks["first"].attempts == 1
    assert record.status.retries is not None
    assert record.status.retries[0].reset == ["check"]
    with pytest.raises(ConflictError) as conflict:
        client.retry(run_id)
    assert "only a Failed or Cancelled run can be retried" in str(conflict.value)


def test_cancel_then_delete(client: Client) -> None:
    run_id = client.submit(sleeping(60)).run_id
    assert client.cancel(run_id).run_id == run_id
    record = client.wait(run_id, timeout=60)
    assert record.status.phase is RunPhase.CANCELLED
    with pytest.raises(ConflictError) as conflict:
        client.cancel(run_id)
    assert conflict.value.status_code == 409
    client.delete(run_id)
    with pytest.raises(NotFoundError):
        client.get(run_id)


def test_logs_of_a_task(client: Client) -> None:
    run_id = client.submit(SEED).run_id
    client.wait(run_id, timeout=60)
    assert "Running task A" in client.logs(run_id, "task_a")


def test_errors_carry_the_status_and_the_detail(client: Client) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.get(str(uuid.uuid4()))
    assert (missing.value.status_code, missing.value.detail) == (404, "Workflow not found")
    with pytest.raises(ApiError) as unknown:
        client.submit({"workflow": [{"type": "parallel", "tasks": ["task_x"]}]})
    assert (unknown.value.status_code, unknown.value.detail) == (400, "Unknown task: task_x")
    with pytest.raises(ApiError) as invalid:
        client.submit({"workflow": [{"type": "sideways", "tasks": ["task_a"]}]})
    assert invalid.value.status_code == 422
    assert "workflow.0.type" in str(invalid.value)
    with pytest.raises(NotFoundError):
        list(client.events(str(uuid.uuid4())))


def test_wait_gives_up_after_its_timeout(client: Client) -> None:
    run_id = client.submit(sleeping(60)).run_id
    with pytest.raises(TimeoutError):
        client.wait(run_id, timeout=0.5)
    client.cancel(run_id)


def test_an_unreachable_server_is_one_error() -> None:
    with Client("http://127.0.0.1:1") as client, pytest.raises(UnreachableError):
        client.get("x")


def test_the_token_goes_as_a_bearer_header() -> None:
    seen: list[str | None] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json=[])

    transport = httpx.MockTransport(answer)
    with Client("http://stageflow.test", token="s3cret", transport=transport) as client:
        assert client.tasks() == []
    with Client("http://stageflow.test", transport=transport) as client:
        client.tasks()
    assert seen == ["Bearer s3cret", None]


def test_the_readme_example_runs(api_url: str) -> None:
    done = subprocess.run(
        [sys.executable, "examples/client_quickstart.py"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "STAGEFLOW_URL": api_url},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "finished Succeeded outputs of check: {'rows': 3}" in done.stdout
    assert "refused 400 Unknown task: task_x" in done.stdout
