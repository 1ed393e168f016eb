"""Workflow bodies several test tiers submit (kmock operator tests, e2e)."""

from __future__ import annotations

from typing import Any


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
