"""Suspend and resume: while suspended no new task (nor forEach instance, nor finally task)
starts, running ones finish, and the run says so. On a virtual clock (looptime)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from stageflow.engine import RunPhase, TaskPhase, TaskRegistry
from tests.support.engine import RecordingSink, make_runner

pytestmark = pytest.mark.looptime


@pytest.fixture
def started(tasks: TaskRegistry) -> dict[str, float]:
    """`timed` tasks: each notes the loop time it started at, then sleeps `seconds`."""
    at: dict[str, float] = {}

    async def timed(label: str, seconds: float = 10) -> bool:
        at[label] = asyncio.get_running_loop().time()
        await asyncio.sleep(seconds)
        return True

    tasks.register(timed, "timed")
    return at


def timed(label: str, **extra: Any) -> dict[str, Any]:
    return {"name": label, "task": "timed", "params": {"label": label}, **extra}


async def test_no_new_task_starts_while_suspended(
    tasks: TaskRegistry, started: dict[str, float]
) -> None:
    body = {
        "workflow": [{"type": "sequential", "tasks": [timed("a"), timed("b"), timed("c")]}],
        "finally": [timed("tidy", params={"label": "tidy", "seconds": 1})],
    }
    sink = RecordingSink()
    runner = make_runner(body, tasks, sink)
    loop = asyncio.get_running_loop()
    begin = loop.time()
    running = asyncio.create_task(runner.run())
    await asyncio.sleep(15)  # `b` runs (from 10 to 20)
    runner.suspend()
    await asyncio.sleep(100)
    assert runner.status.suspended is True
    assert runner.status.tasks["b"].phase is TaskPhase.SUCCEEDED  # it finished
    assert runner.status.tasks["c"].phase is TaskPhase.PENDING  # nothing new started
    assert runner.status.phase is RunPhase.RUNNING
    assert any(status.suspended for status, _, _ in sink.published)  # the store heard
    runner.resume()
    status = await running
    assert status.phase is RunPhase.SUCCEEDED
    assert status.suspended is None
    assert round(started["c"] - begin) == 115  # started on resume
    assert round(started["tidy"] - begin) == 125


async def test_instances_of_a_for_each_wait_too(
    tasks: TaskRegistry, started: dict[str, float]
) -> None:
    body = {
        "parallelism": 1,
        "dag": [
            {
                "name": "each",
                "task": "timed",
                "forEach": ["x", "y", "z"],
                "params": {"label": "{{ item }}"},
            }
        ],
    }
    runner = make_runner(body, tasks)
    begin = asyncio.get_running_loop().time()
    running = asyncio.create_task(runner.run())
    await asyncio.sleep(5)
    runner.suspend()
    await asyncio.sleep(50)
    assert set(started) == {"x"}
    runner.resume()
    await running
    assert [round(started[item] - begin) for item in "xyz"] == [0, 55, 65]


async def test_a_cancel_while_suspended_ends_the_run_and_runs_finally(
    tasks: TaskRegistry, started: dict[str, float]
) -> None:
    body = {"dag": [timed("a"), timed("b", dependsOn=["a"])], "finally": [timed("tidy")]}
    runner = make_runner(body, tasks)
    running = asyncio.create_task(runner.run())
    await asyncio.sleep(1)
    runner.suspend()
    await asyncio.sleep(20)
    runner.cancel()
    status = await running
    assert status.phase is RunPhase.CANCELLED
    assert status.tasks["b"].phase is TaskPhase.CANCELLED
    assert status.tasks["tidy"].phase is TaskPhase.SUCCEEDED
    assert status.suspended is None


async def test_an_ended_run_is_not_left_suspended(
    tasks: TaskRegistry, started: dict[str, float]
) -> None:
    runner = make_runner(
        {"timeoutSeconds": 30, "dag": [timed("a"), timed("b", dependsOn=["a"])]}, tasks
    )
    running = asyncio.create_task(runner.run())
    await asyncio.sleep(1)
    runner.suspend()
    status = await running  # times out while suspended
    assert status.phase is RunPhase.FAILED
    assert status.suspended is None


async def test_a_task_under_way_before_a_restart_is_followed_while_suspended(
    tasks: TaskRegistry, started: dict[str, float]
) -> None:
    sink = RecordingSink()
    first = make_runner({"dag": [timed("a"), timed("b", dependsOn=["a"])]}, tasks, sink)
    running = asyncio.create_task(first.run())
    await asyncio.sleep(5)
    first.suspend()
    await asyncio.sleep(0)
    running.cancel()  # the host goes away while `a` runs, the run suspended
    with pytest.raises(asyncio.CancelledError):
        await running
    saved = sink.published[-1][0]
    assert saved.suspended is True
    second = make_runner({"dag": [timed("a"), timed("b", dependsOn=["a"])]}, tasks, status=saved)
    resumed = asyncio.create_task(second.run())
    await asyncio.sleep(60)
    assert second.status.tasks["a"].phase is TaskPhase.SUCCEEDED  # followed to its end
    assert second.status.tasks["b"].phase is TaskPhase.PENDING  # nothing new started
    second.cancel()
    status = await resumed
    assert status.phase is RunPhase.CANCELLED
