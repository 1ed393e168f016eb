"""The operator's status writer: bounded lag, coalescing, retries from memory.

Finding 7 of issue 9 (a task's success reached the WorkflowRun 7-10 s after it
ended) and finding 3 (a failed write re-ran the run) at the unit level: a change
is written once its window (`interval`) has passed, the final status is never held
back, and a failed write is retried from the newest status in memory until it lands.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest

from stageflow.engine import RunPhase, RunStatus, TaskPhase, TaskStatus
from stageflow.kube import KubeClient, KubeUnavailableError
from stageflow.operator.status import Outage, StatusWriter
from tests.polling import eventually


class FakeKube:
    """Records status patches with the loop time they were made at; fails the first few."""

    def __init__(self, *, failures: int = 0) -> None:
        self.failures = failures
        self.patches: list[tuple[float, dict[str, Any]]] = []

    async def patch_run_status(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any]:
        await asyncio.sleep(0.01)  # a write takes a moment
        if self.failures:
            self.failures -= 1
            raise KubeUnavailableError("apiserver unreachable: connection refused")
        self.patches.append((asyncio.get_running_loop().time(), patch))
        return {}


def writer(kube: FakeKube, *, interval: float = 0.5, outage: Outage | None = None) -> StatusWriter:
    return StatusWriter(
        cast(KubeClient, kube),
        "default",
        "run",
        interval=interval,
        generation=lambda: 1,
        outage=outage or Outage(),
    )


def status(**phases: TaskPhase) -> RunStatus:
    return RunStatus(
        phase=RunPhase.RUNNING,
        tasks={name: TaskStatus(phase=phase) for name, phase in phases.items()},
    )


async def test_changes_in_one_window_go_out_together_once_it_has_passed() -> None:
    kube = FakeKube()
    sink = writer(kube, interval=0.3)
    start = asyncio.get_running_loop().time()
    current = status(a=TaskPhase.SUCCEEDED, b=TaskPhase.RUNNING)
    await sink.publish(current, frozenset({"a"}), final=False)
    await sink.publish(current, frozenset({"b"}), final=False)  # joins the same window

    async def written() -> bool:
        return bool(kube.patches)

    await eventually(written)
    at, patch = kube.patches[0]
    assert at - start >= 0.3, "written before its window passed"
    assert set(patch["status"]["tasks"]) == {"a", "b"}
    assert len(kube.patches) == 1
    sink.close()


async def test_the_final_status_ends_the_window_and_is_written_once() -> None:
    kube = FakeKube()
    sink = writer(kube, interval=3600)  # the test would time out if the window held it
    current = status(a=TaskPhase.RUNNING)
    await sink.publish(current, frozenset({"a"}), final=False)
    current.tasks["a"].phase, current.phase = TaskPhase.SUCCEEDED, RunPhase.SUCCEEDED
    await sink.publish(current, frozenset({"a"}), final=True)
    assert [patch["status"]["phase"] for _, patch in kube.patches] == ["Succeeded"]


async def test_failed_writes_are_retried_from_memory_with_one_line_per_outage(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="stageflow.operator.status")
    kube = FakeKube(failures=3)
    sink = writer(kube, interval=0.01)
    current = status(a=TaskPhase.RUNNING, b=TaskPhase.PENDING)
    await sink.publish(current, frozenset({"a", "b"}), final=False)

    async def refused_twice() -> bool:
        return kube.failures <= 1

    await eventually(refused_twice)  # the run moves on meanwhile
    current.tasks["a"].phase = TaskPhase.SUCCEEDED
    current.tasks["b"].phase = TaskPhase.SUCCEEDED
    current.phase = RunPhase.SUCCEEDED
    await sink.publish(current, frozenset({"a"}), final=True)
    assert len(kube.patches) == 1, "one write carries everything once the apiserver answers"
    written = kube.patches[0][1]["status"]
    assert written["phase"] == "Succeeded"
    assert {task: entry["phase"] for task, entry in written["tasks"].items()} == {
        "a": "Succeeded",
        "b": "Succeeded",
    }
    levels = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert [level for level, _ in levels] == ["WARNING", "INFO"], levels
    assert "3 failed attempts" in levels[1][1]
    assert all(record.exc_info is None for record in caplog.records)
