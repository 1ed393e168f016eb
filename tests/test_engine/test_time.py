"""Time in the engine on a virtual clock (looptime, as kopf's own tests use): backoffs and
timeouts of minutes and hours are asserted exactly, and take milliseconds of real time.

Every task here is async: looptime moves the loop's clock, and a sync task's thread would
run on the real one. The run's own status timestamps are wall-clock, so the checks are on
the loop's time (`loop.time()`, which looptime fast-forwards) and on attempt counts."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest

from stageflow.engine import RunPhase, TaskPhase, TaskRegistry
from tests.support.engine import RecordingSink, RunBody

pytestmark = pytest.mark.looptime


@pytest.fixture
def failing(tasks: TaskRegistry) -> list[float]:
    """An async task that always fails, noting the loop time of each attempt."""
    attempts: list[float] = []

    async def always_fails_async() -> bool:
        attempts.append(asyncio.get_running_loop().time())
        raise ConnectionError(f"try {len(attempts)}")

    tasks.register(always_fails_async)
    return attempts


async def test_retries_back_off_10_20_40_seconds(run_body: RunBody, failing: list[float]) -> None:
    body = {
        "dag": [
            {"name": "f", "task": "always_fails_async", "retries": 3, "retryBackoffSeconds": 10}
        ]
    }
    sink = RecordingSink()
    status = await run_body(body, sink)
    assert status.tasks["f"].phase is TaskPhase.FAILED
    assert status.tasks["f"].attempts == 4
    gaps = [round(b - a, 3) for a, b in pairwise(failing)]
    assert gaps == [10.0, 20.0, 40.0]
    messages = [s.tasks["f"].message for s, _, _ in sink.published]
    assert "attempt 3 failed: ConnectionError: try 3; retrying in 40s" in messages


async def test_a_backoff_never_exceeds_an_hour(run_body: RunBody, failing: list[float]) -> None:
    body = {
        "dag": [
            {"name": "f", "task": "always_fails_async", "retries": 3, "retryBackoffSeconds": 2000}
        ]
    }
    await run_body(body)
    gaps = [round(b - a, 3) for a, b in pairwise(failing)]
    assert gaps == [2000.0, 3600.0, 3600.0]


async def test_a_task_timeout_of_ten_minutes_ends_a_two_hour_sleep_at_ten_minutes(
    run_body: RunBody,
) -> None:
    loop = asyncio.get_running_loop()
    body = {
        "dag": [
            {"name": "t", "task": "sleep", "params": {"seconds": 7200}, "timeoutSeconds": 600},
            {"name": "after", "task": "sleep", "params": {"seconds": 30}, "dependsOn": ["t"]},
        ],
        "failFast": False,
    }
    started = loop.time()
    status = await run_body(body)
    assert status.tasks["t"].phase is TaskPhase.FAILED
    assert status.tasks["t"].message == "timed out after 600s"
    assert status.tasks["after"].phase is TaskPhase.SKIPPED
    assert loop.time() - started == pytest.approx(600, abs=1)


async def test_a_run_timeout_stops_a_run_of_hours(run_body: RunBody) -> None:
    loop = asyncio.get_running_loop()
    body = {
        "timeoutSeconds": 3600,
        "workflow": [
            {
                "type": "sequential",
                "tasks": [
                    {"name": f"nap{i}", "task": "sleep", "params": {"seconds": 1500}}
                    for i in range(4)
                ],
            }
        ],
    }
    started = loop.time()
    status = await run_body(body)
    assert status.phase is RunPhase.FAILED
    assert status.message == "Run timed out after 3600s"
    phases = {task_id: task.phase for task_id, task in status.tasks.items()}
    assert phases == {
        "nap0": TaskPhase.SUCCEEDED,
        "nap1": TaskPhase.SUCCEEDED,
        "nap2": TaskPhase.FAILED,
        "nap3": TaskPhase.SKIPPED,
    }
    assert loop.time() - started == pytest.approx(3600, abs=1)


async def test_a_running_task_s_output_is_published_while_it_runs_and_only_when_it_grew(
    tasks: TaskRegistry, run_body: RunBody
) -> None:
    """What `logs --follow` reads: the output so far, every half second while it grows."""

    async def talks_then_naps() -> bool:
        print("first line")
        await asyncio.sleep(10)
        print("last line")
        return True

    tasks.register(talks_then_naps)
    sink = LogRecordingSink()
    await run_body({"dag": [{"name": "t", "task": "talks_then_naps"}]}, sink)
    assert sink.log_writes == [
        "--- attempt 1 ---\nfirst line\n",  # published once while it ran, not every tick
        "--- attempt 1 ---\nfirst line\nlast line\n",  # the final log
    ]


class LogRecordingSink(RecordingSink):
    """Keeps every log write, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.log_writes: list[str] = []

    async def record_log(self, task_id: str, text: str) -> None:
        self.log_writes.append(text)
        await super().record_log(task_id, text)
