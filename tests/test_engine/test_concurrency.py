"""Concurrency keys and priority in the engine: the order of admission, runs waiting Queued
for their keys, the strategies, task-level keys across runs. On a virtual clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stageflow.engine import RunPhase, TaskPhase, TaskRegistry
from stageflow.engine.admission import Claim, MemoryAdmission, RunQueue, order_score
from stageflow.models.status import RunStatus
from tests.support.engine import RecordingSink, make_runner

pytestmark = pytest.mark.looptime

T0 = datetime(2026, 12, 6, tzinfo=UTC)


@pytest.fixture
def spans(tasks: TaskRegistry) -> list[tuple[str, float, float]]:
    """`span` tasks: each records (label, start, end) in loop time."""
    found: list[tuple[str, float, float]] = []

    async def span(label: str, seconds: float = 10, db: str = "") -> bool:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(seconds)
        found.append((label, start, loop.time()))
        return True

    tasks.register(span, "span")
    return found


def body(
    label: str, *, env: str = "prod", max_: int = 1, seconds: float = 10, **options: Any
) -> dict[str, Any]:
    return {
        "dag": [{"name": "work", "task": "span", "params": {"label": label, "seconds": seconds}}],
        "params": {"env": env},
        "concurrency": [{"key": "params.env", "max": max_}],
        **options,
    }


def most_at_once(spans: list[tuple[str, float, float]]) -> int:
    edges = sorted([(start, 1) for _, start, _ in spans] + [(end, -1) for _, _, end in spans])
    level = peak = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        level += step
        peak = max(peak, level)
    return peak


async def test_admission_is_by_priority_then_time_and_aging_bounds_it() -> None:
    admission = MemoryAdmission()
    claim = [Claim("run:k", 1)]
    assert await admission.acquire("holder", claim, 0.0) is None
    early_low = order_score(0, T0)
    late_high = order_score(5, T0 + timedelta(minutes=4))  # 5 points: 5 min of waiting
    later_high = order_score(5, T0 + timedelta(minutes=6))
    for name, order in (("early-low", early_low), ("late-high", late_high), ("later", later_high)):
        place = await admission.acquire(name, claim, order)
        assert place is not None
    places = {
        name: await admission.acquire(name, claim, order)
        for name, order in (
            ("early-low", early_low),
            ("late-high", late_high),
            ("later", later_high),
        )
    }
    assert {name: place.position for name, place in places.items() if place} == {
        "late-high": 1,
        "early-low": 2,  # overtaken by a priority-5 run submitted 4 minutes after it...
        "later": 3,  # ...but not by one submitted 6 minutes after: it has waited enough
    }
    await admission.release("holder", claim)
    assert await admission.acquire("early-low", claim, early_low) is not None
    assert await admission.acquire("late-high", claim, late_high) is None


async def test_runs_over_the_limit_wait_queued_and_start_in_turn(
    tasks: TaskRegistry, spans: list[tuple[str, float, float]]
) -> None:
    admission = MemoryAdmission()
    sinks = [RecordingSink() for _ in range(4)]
    runners = [
        make_runner(
            body(f"r{index}", max_=2, seconds=10 * (index + 1)),
            tasks,
            sinks[index],
            queue=RunQueue(admission, f"run-{index}", order=float(index), poll_seconds=1),
        )
        for index in range(4)
    ]
    running = [asyncio.create_task(runner.run()) for runner in runners]
    await asyncio.sleep(1)
    assert [runner.status.phase for runner in runners] == [
        RunPhase.RUNNING,
        RunPhase.RUNNING,
        RunPhase.QUEUED,
        RunPhase.QUEUED,
    ]
    queue = runners[3].status.queue
    assert queue is not None
    assert queue.keys == ["prod"]
    assert queue.position == 2
    assert any(status.phase is RunPhase.QUEUED for status, _, _ in sinks[3].published)
    finals = await asyncio.gather(*running)
    assert [final.phase for final in finals] == [RunPhase.SUCCEEDED] * 4
    assert all(final.queue is None for final in finals)
    assert most_at_once(spans) == 2
    assert [label for label, _, _ in sorted(spans, key=lambda span: span[1])][2:] == ["r2", "r3"]
    assert admission.counts() == {}  # nothing left held


async def test_a_queued_run_cancelled_ends_cancelled_and_leaves_the_line(
    tasks: TaskRegistry, spans: list[tuple[str, float, float]]
) -> None:
    admission = MemoryAdmission()
    first = make_runner(body("first"), tasks, queue=RunQueue(admission, "first"))
    second = make_runner(body("second"), tasks, queue=RunQueue(admission, "second", order=1))
    tasks_ = [asyncio.create_task(first.run()), asyncio.create_task(second.run())]
    await asyncio.sleep(1)
    assert second.status.phase is RunPhase.QUEUED
    second.cancel()
    final = await tasks_[1]
    assert final.phase is RunPhase.CANCELLED
    assert final.tasks["work"].phase is TaskPhase.CANCELLED
    assert (await tasks_[0]).phase is RunPhase.SUCCEEDED
    assert [label for label, _, _ in spans] == ["first"]
    assert admission.counts() == {}


async def test_cancel_newest_cancels_the_run_that_does_not_fit(
    tasks: TaskRegistry, spans: list[tuple[str, float, float]]
) -> None:
    admission = MemoryAdmission()
    rule = [{"key": "params.env", "max": 1, "strategy": "cancelNewest"}]
    first = make_runner(
        {**body("first"), "concurrency": rule}, tasks, queue=RunQueue(admission, "a")
    )
    started = asyncio.create_task(first.run())
    await asyncio.sleep(1)
    second = make_runner(
        {**body("second"), "concurrency": rule}, tasks, queue=RunQueue(admission, "b")
    )
    final = await second.run()
    assert final.phase is RunPhase.CANCELLED
    assert final.message is not None
    assert "concurrency key prod is at its limit (1)" in final.message
    assert (await started).phase is RunPhase.SUCCEEDED
    assert [label for label, _, _ in spans] == ["first"]


async def test_cancel_in_progress_cancels_the_holders_and_runs_next(
    tasks: TaskRegistry, spans: list[tuple[str, float, float]]
) -> None:
    admission = MemoryAdmission()
    rule = [{"key": "params.env", "max": 1, "strategy": "cancelInProgress"}]
    runners: dict[str, Any] = {}

    async def preempt(run_id: str) -> None:
        runners[run_id].cancel("Cancelled: a newer run took its concurrency key")

    for name in ("old", "new"):
        runners[name] = make_runner(
            {**body(name), "concurrency": rule},
            tasks,
            queue=RunQueue(admission, name, order=0 if name == "old" else 1, preempt=preempt),
        )
    old = asyncio.create_task(runners["old"].run())
    await asyncio.sleep(2)
    new = asyncio.create_task(runners["new"].run())
    assert (await old).phase is RunPhase.CANCELLED
    assert (await new).phase is RunPhase.SUCCEEDED
    assert [label for label, _, _ in spans] == ["new"]


async def test_a_run_under_way_before_a_restart_takes_its_keys_back(
    tasks: TaskRegistry, spans: list[tuple[str, float, float]]
) -> None:
    """The leader that takes over admits nothing new while those it resumes take theirs."""
    admission = MemoryAdmission(grace_seconds=5)
    queued = make_runner(body("queued"), tasks, queue=RunQueue(admission, "queued", order=0))
    waiting = asyncio.create_task(queued.run())
    await asyncio.sleep(1)
    assert queued.status.phase is RunPhase.QUEUED  # within the grace: not yet
    resumed = make_runner(
        body("resumed"),
        tasks,
        status=RunStatus(phase=RunPhase.RUNNING),
        queue=RunQueue(admission, "resumed", order=5),
    )
    again = asyncio.create_task(resumed.run())
    await asyncio.sleep(10)
    assert queued.status.phase is RunPhase.QUEUED  # the resumed run holds the key
    assert (await again).phase is RunPhase.SUCCEEDED
    assert (await waiting).phase is RunPhase.SUCCEEDED
    assert most_at_once(spans) == 1


async def test_task_keys_limit_tasks_across_runs(
    tasks: TaskRegistry, spans: list[tuple[str, float, float]]
) -> None:
    admission = MemoryAdmission()
    writer: dict[str, Any] = {
        "name": "write",
        "task": "span",
        "params": {"label": "w", "db": "orders"},
        "concurrency": [{"key": '"db-" + params.db', "max": 2}],
    }
    runners = [
        make_runner(
            {"dag": [{**writer, "params": {**writer["params"], "label": f"w{index}"}}]},
            tasks,
            queue=RunQueue(admission, f"run-{index}", order=float(index), poll_seconds=1),
        )
        for index in range(5)
    ]
    running = [asyncio.create_task(runner.run()) for runner in runners]
    await asyncio.sleep(1)
    waiting = [runner.status.tasks["write"] for runner in runners[2:]]
    assert all(task.phase is TaskPhase.RUNNING for task in waiting)  # under way, waiting
    assert waiting[0].message == "waiting for concurrency key db-orders (1 in line)"
    finals = await asyncio.gather(*running)
    assert all(final.phase is RunPhase.SUCCEEDED for final in finals)
    assert most_at_once(spans) == 2
    assert admission.counts() == {}


async def test_a_run_cancelled_while_queued_runs_no_finally_task(
    tasks: TaskRegistry, spans: list[tuple[str, float, float]]
) -> None:
    admission = MemoryAdmission()
    first = make_runner(body("first"), tasks, queue=RunQueue(admission, "first"))
    with_finally = {
        **body("second"),
        "finally": [{"name": "tidy", "task": "span", "params": {"label": "tidy"}}],
    }
    second = make_runner(with_finally, tasks, queue=RunQueue(admission, "second", order=1))
    going = asyncio.create_task(first.run())
    waiting = asyncio.create_task(second.run())
    await asyncio.sleep(1)
    second.cancel()
    final = await waiting
    assert final.phase is RunPhase.CANCELLED
    assert final.tasks["tidy"].phase is TaskPhase.CANCELLED  # it never started: nor does this
    await going
    assert [label for label, _, _ in spans] == ["first"]


async def test_a_task_waiting_for_its_key_is_under_way_for_fail_fast(
    tasks: TaskRegistry, spans: list[tuple[str, float, float]]
) -> None:
    """Fail fast lets what is under way finish (the waiting task among it), and counts
    each task once."""
    admission = MemoryAdmission()
    holder = make_runner(
        {"dag": [{"name": "w", "task": "span", "params": {"label": "holder", "seconds": 50},
                  "concurrency": [{"key": '"db"', "max": 1}]}]},
        tasks,
        queue=RunQueue(admission, "holder"),
    )  # fmt: skip
    other = make_runner(
        {"dag": [
            {"name": "w", "task": "span", "params": {"label": "waiter", "seconds": 5},
             "concurrency": [{"key": '"db"', "max": 1}]},
            {"name": "bad", "task": "fail", "params": {"message": "no"}},
        ]},
        tasks,
        queue=RunQueue(admission, "other", order=1),
    )  # fmt: skip
    held = asyncio.create_task(holder.run())
    await asyncio.sleep(1)
    final = await other.run()
    assert final.phase is RunPhase.FAILED
    assert final.tasks["w"].phase is TaskPhase.SUCCEEDED  # it was under way: it finished
    assert final.progress == "2/2"
    await held
    assert most_at_once(spans) == 1
