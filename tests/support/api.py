"""Talking to the HTTP API in tests: submit, and wait by polling, never by sleeping."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
from fastapi.testclient import TestClient

FINISHED = {"Succeeded", "Failed", "Cancelled"}


def finish_task_threads(threads: set[threading.Thread], within: float = 30) -> None:
    """Wait for the task threads of a closed app (its executor was shut down) to end, so
    a run the test did not wait for cannot print into, or race with, the next test."""
    deadline = time.monotonic() + within
    for thread in threads:
        if thread.name.startswith("stageflow-task"):
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), f"{thread.name} still runs {within}s after shutdown"


def backend_of(client: TestClient) -> str:
    return str(client.app.state.settings.backend)  # type: ignore[attr-defined]


def wait_for_run(
    client: TestClient | httpx.Client, run_id: str, phases: set[str] = FINISHED, timeout: float = 10
) -> dict[str, Any]:
    """Poll GET /workflow/{id} until the run's phase is one of `phases`."""
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/workflow/{run_id}").json()
        if body.get("status", {}).get("phase") in phases:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} never reached {phases}: {body}")
        time.sleep(0.02)


def wait_for_task(
    client: TestClient | httpx.Client, run_id: str, task: str, phase: str, timeout: float = 10
) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/workflow/{run_id}/status").json().get(task) != phase:
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task} of {run_id} never reached {phase}")
        time.sleep(0.02)


def read_events(lines: Iterator[str]) -> list[tuple[str, dict[str, Any]]]:
    """Parse a server-sent-event stream into (event, data) pairs."""
    events: list[tuple[str, dict[str, Any]]] = []
    kind = ""
    for line in lines:
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((kind, json.loads(line.removeprefix("data: "))))
    return events


def submit(client: TestClient | httpx.Client, body: dict[str, Any]) -> str:
    response = client.post("/workflow", json=body)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id
