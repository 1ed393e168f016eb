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
from stageflow.operator.status import LOG_SAVES, Outage, StatusWriter
from stageflow.store import RunStore
from tests.support.polling import eventually


class FakeKube:
    """Records status patches with the loop time they were made at; fails the first few."""

    def __init__(self, *, failures: int = 0, order: list[str] | None = None) -> None:
        self.failures = failures
        self.patches: list[tuple[float, dict[str, Any]]] = []
        self.order = order if order is not None else []

    async def patch_run_status(self, namespace: str, name: str, patch: dict[str, Any]) -> bool:
        await asyncio.sleep(0.01)  # a write takes a moment
        if self.failures:
            self.failures -= 1
            raise KubeUnavailableError("apiserver unreachable: connection refused")
        self.patches.append((asyncio.get_running_loop().time(), patch))
        self.order.append("status")
        return True


class FakeLogs:
    """Records log saves, in the same timeline as FakeKube's patches (`order`)."""

    def __init__(self, order: list[str]) -> None:
        self.saves: list[dict[str, str]] = []
        self.order = order

    async def save_logs(self, run_id: str, logs: dict[str, str]) -> None:
        self.saves.append(dict(logs))
        self.order.append("logs")


def writer(
    kube: FakeKube,
    *,
    interval: float = 0.5,
    outage: Outage | None = None,
    logs: FakeLogs | None = None,
) -> StatusWriter:
    return StatusWriter(
        cast(KubeClient, kube),
        "default",
        "run",
        interval=interval,
        generation=lambda: 1,
        outage=outage or Outage(),
        logs=cast(RunStore, logs),
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


async def test_logs_of_one_window_are_one_write_made_before_the_status_patch() -> None:
    order: list[str] = []
    kube, logs = FakeKube(order=order), FakeLogs(order)
    sink = writer(kube, interval=0.3, logs=logs)
    ended: dict[str, TaskPhase] = {}
    for task in ("a", "b", "c"):  # three tasks end in one window, each with its log
        await sink.record_log(task, f"--- attempt 1 ---\n{task} says hi\n")
        ended[task] = TaskPhase.SUCCEEDED
        await sink.publish(status(**ended), frozenset({task}), final=False)
    await sink.record_log("a", "--- attempt 1 ---\na says more\n")  # the latest text wins
    final = status(**ended)
    final.phase = RunPhase.SUCCEEDED
    await sink.publish(final, frozenset(), final=True)
    assert logs.saves == [
        {
            "a": "--- attempt 1 ---\na says more\n",
            "b": "--- attempt 1 ---\nb says hi\n",
            "c": "--- attempt 1 ---\nc says hi\n",
        }
    ]
    assert order == ["logs", "status"]  # a reader who sees the run ended finds its logs


async def test_a_log_recorded_while_logs_are_being_saved_is_saved_before_its_status() -> None:
    order: list[str] = []
    kube, logs = FakeKube(order=order), FakeLogs(order)
    release = asyncio.Event()
    save = logs.save_logs

    async def slow_save(run_id: str, logs: dict[str, str]) -> None:
        await release.wait()  # the first save is out while task b ends
        await save(run_id, logs)

    logs.save_logs = slow_save  # type: ignore[method-assign]
    sink = writer(kube, interval=0.01, logs=logs)
    await sink.record_log("a", "a's log\n")
    running = status(a=TaskPhase.SUCCEEDED, b=TaskPhase.RUNNING)
    await sink.publish(running, frozenset("a"), final=False)

    async def saving() -> bool:
        return not sink._logs_pending  # taken by the write that is now saving them

    await eventually(saving)
    await sink.record_log("b", "b's log\n")
    final = status(a=TaskPhase.SUCCEEDED, b=TaskPhase.SUCCEEDED)
    final.phase = RunPhase.SUCCEEDED
    release.set()
    await sink.publish(final, frozenset("b"), final=True)
    assert logs.saves == [{"a": "a's log\n"}, {"b": "b's log\n"}]
    assert order == ["logs", "status", "logs", "status"]


async def test_a_store_that_refuses_logs_never_holds_the_status_up(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LOG_SAVES, "_since", None)  # an outage starts here: one line
    kube, logs = FakeKube(), FakeLogs([])

    async def refuse(run_id: str, logs: dict[str, str]) -> None:
        raise RuntimeError("READONLY You can't write against a read only replica.")

    logs.save_logs = refuse  # type: ignore[method-assign]
    sink = writer(kube, interval=0.01, logs=logs)
    await sink.record_log("a", "hello\n")
    final = status(a=TaskPhase.SUCCEEDED)
    final.phase = RunPhase.SUCCEEDED
    async with asyncio.timeout(5):
        await sink.publish(final, frozenset("a"), final=True)
    assert len(kube.patches) == 1
    assert "task logs are not kept while the store fails: READONLY" in caplog.text


async def test_a_live_log_alone_is_saved_without_a_status_patch() -> None:
    kube, logs = FakeKube(), FakeLogs([])
    sink = writer(kube, interval=0.05, logs=logs)
    await sink.record_log("a", "still running\n")

    async def saved() -> bool:
        return bool(logs.saves)

    await eventually(saved)
    assert logs.saves == [{"a": "still running\n"}]
    assert kube.patches == []
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


async def test_a_status_that_cannot_be_encoded_is_logged_and_written_once_it_can(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug while building the patch neither loses the pending changes nor hangs the
    final write: it is said loudly, and the write is tried again from memory."""
    from stageflow.kube import status_patch
    from stageflow.operator import status as status_module

    real = status_patch
    broken = [True]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if broken.pop() if broken else False:
            raise TypeError("unhashable type: 'Decision'")
        return real(*args, **kwargs)

    monkeypatch.setattr(status_module, "status_patch", flaky)
    kube = FakeKube()
    sink = writer(kube, interval=0.05)
    final = status(a=TaskPhase.SUCCEEDED)
    final.phase = RunPhase.SUCCEEDED
    async with asyncio.timeout(10):
        await sink.publish(final, frozenset({"a"}), final=True)
    assert [patch["status"]["tasks"] for _, patch in kube.patches] == [
        {"a": TaskStatus(phase=TaskPhase.SUCCEEDED).model_dump(mode="json", by_alias=True)}
    ]
    assert "status of default/run not written; retrying" in caplog.text
