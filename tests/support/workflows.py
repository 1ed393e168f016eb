"""Workflow bodies several test tiers submit (the API, the client, kmock operator tests, e2e)."""

from __future__ import annotations

from typing import Any

SEED: dict[str, Any] = {
    "workflow": [
        {"type": "parallel", "tasks": ["task_a", "task_b"]},
        {"type": "sequential", "tasks": ["task_c"]},
    ]
}


def failing(name: str, message: str, *, retries: int = 0, backoff: float = 0.01) -> dict[str, Any]:
    """A task entry that fails with `message` on every attempt."""
    return {
        "name": name,
        "task": "fail",
        "params": {"message": message},
        "retries": retries,
        "retryBackoffSeconds": backoff,
    }


def sequential(*tasks: dict[str, Any] | str) -> dict[str, Any]:
    return {"workflow": [{"type": "sequential", "tasks": list(tasks)}]}


def sleeps(count: int, seconds: float, kind: str = "parallel") -> dict[str, Any]:
    tasks = [
        {"name": f"s{i}", "task": "sleep", "params": {"seconds": seconds}} for i in range(count)
    ]
    return {"workflow": [{"type": kind, "tasks": tasks}]}


def sleeping(seconds: float, name: str = "s0") -> dict[str, Any]:
    return {"workflow": [{"type": "parallel", "tasks": [_sleep(name, seconds)]}]}


def _sleep(name: str, seconds: float) -> dict[str, Any]:
    return {"name": name, "task": "sleep", "params": {"seconds": seconds}}
