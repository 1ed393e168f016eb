"""The built-in tasks: the seed assignment's four, and a few that make demos and tests honest.

`sleep` and `fail` make timing and failure visible; `echo` returns its params.
The built-in task that calls out over the network, `http_get`, lives outside the engine
(stageflow.tasks.http), which knows no HTTP client.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stageflow.engine.registry import task


def _announce(letter: str) -> bool:
    """Print what the assignment's tasks print (`Running task A`), so the two logs compare."""
    print(f"Running task {letter}")
    return True


@task
def task_a() -> bool:
    """Print and succeed (the seed workflow's first parallel task)."""
    return _announce("A")


@task
def task_b() -> bool:
    """Print and succeed (the seed workflow's second parallel task)."""
    return _announce("B")


@task
def task_c() -> bool:
    """Print and succeed (the seed workflow's final task)."""
    return _announce("C")


@task
def task_d() -> bool:
    """Print and succeed."""
    return _announce("D")


@task("sleep")
async def sleep_task(seconds: float = 1.0) -> bool:
    """Wait `seconds` without blocking anything, then succeed."""
    await asyncio.sleep(float(seconds))
    return True


@task("fail")
def fail_task(message: str = "failed on purpose") -> bool:
    """Fail with `message`."""
    raise RuntimeError(message)


@task("echo")
def echo_task(**params: Any) -> dict[str, Any]:
    """Return the params as the task's outputs."""
    return dict(params)


@task("noop")
async def noop_task() -> bool:
    """Succeed at once (for measuring the engine's own overhead)."""
    return True
