"""`delivery: atMostOnce`: an attempt's start is stored before the body runs, and an attempt
cut short by its host's death counts as failed, retried only within `retries`."""

from __future__ import annotations

import asyncio

import pytest

from stageflow.engine import RunPhase, TaskPhase, TaskRegistry
from tests.support.engine import RecordingSink, make_runner

pytestmark = pytest.mark.looptime


@pytest.fixture
def bodies(tasks: TaskRegistry) -> list[int]:
    """`charge`: notes each time its body runs, then takes 10 s."""
    runs: list[int] = []

    async def charge() -> bool:
        runs.append(len(runs) + 1)
        await asyncio.sleep(10)
        return True

    tasks.register(charge, "charge")
    return runs


def body(retries: int, delivery: str = "atMostOnce") -> dict[str, object]:
    return {"dag": [{"name": "pay", "task": "charge", "retries": retries, "delivery": delivery}]}


async def interrupted(tasks: TaskRegistry, spec: dict[str, object]) -> RecordingSink:
    """The run, its host gone 5 s into the first attempt: the sink holds what was stored."""
    sink = RecordingSink()
    running = asyncio.create_task(make_runner(spec, tasks, sink).run())
    await asyncio.sleep(5)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    return sink


async def test_the_start_is_stored_before_the_body_runs(
    tasks: TaskRegistry, bodies: list[int]
) -> None:
    sink = RecordingSink()
    status = await make_runner(body(retries=0), tasks, sink).run()
    assert status.phase is RunPhase.SUCCEEDED
    assert sink.barriers == 1
    stored_running = [s for s, _, _ in sink.published if s.tasks["pay"].attempts == 1]
    assert stored_running[0].tasks["pay"].phase is TaskPhase.RUNNING
    plain = RecordingSink()
    await make_runner(body(retries=0, delivery="atLeastOnce"), tasks, plain).run()
    assert plain.barriers == 0  # the default costs no extra write


async def test_an_interrupted_attempt_is_not_run_again_without_retries(
    tasks: TaskRegistry, bodies: list[int]
) -> None:
    sink = await interrupted(tasks, body(retries=0))
    saved = sink.published[-1][0]
    assert saved.tasks["pay"].phase is TaskPhase.RUNNING
    status = await make_runner(body(retries=0), tasks, RecordingSink(), status=saved).run()
    assert bodies == [1]  # once, in total
    assert status.tasks["pay"].phase is TaskPhase.FAILED
    assert status.tasks["pay"].message == (
        "attempt 1 was interrupted (its host stopped) and is not run again (delivery: atMostOnce)"
    )


async def test_an_interrupted_attempt_counts_against_retries(
    tasks: TaskRegistry, bodies: list[int]
) -> None:
    sink = await interrupted(tasks, body(retries=1))
    resumed = RecordingSink()
    status = await make_runner(body(retries=1), tasks, resumed, status=sink.published[-1][0]).run()
    assert bodies == [1, 2]  # retries + 1 in total
    assert status.tasks["pay"].phase is TaskPhase.SUCCEEDED
    assert status.tasks["pay"].attempts == 2
    assert "interrupted: its host stopped" in resumed.logs["pay"]


async def test_at_least_once_runs_the_interrupted_attempt_again_uncounted(
    tasks: TaskRegistry, bodies: list[int]
) -> None:
    sink = await interrupted(tasks, body(retries=0, delivery="atLeastOnce"))
    saved = sink.published[-1][0]
    status = await make_runner(
        body(retries=0, delivery="atLeastOnce"), tasks, RecordingSink(), status=saved
    ).run()
    assert bodies == [1, 2]
    assert status.tasks["pay"].phase is TaskPhase.SUCCEEDED


async def test_every_attempt_s_start_is_stored_downstream_and_after_a_retry(
    tasks: TaskRegistry,
) -> None:
    """The barrier publishes first: the attempt is in what the sink stored, whether the
    task is the first of the run or not, and for its second attempt as for its first."""
    tries: list[int] = []

    async def flaky_charge() -> bool:
        tries.append(1)
        if len(tries) == 1:
            raise RuntimeError("declined")
        return True

    tasks.register(flaky_charge, "flaky_charge")
    spec = {
        "dag": [
            {"name": "first", "task": "task_a"},
            {
                "name": "pay",
                "task": "flaky_charge",
                "dependsOn": ["first"],
                "retries": 1,
                "retryBackoffSeconds": 30,
                "delivery": "atMostOnce",
            },
        ]
    }
    sink = RecordingSink()
    status = await make_runner(spec, tasks, sink).run()
    assert status.phase is RunPhase.SUCCEEDED
    stored = [(s.tasks["pay"].phase, s.tasks["pay"].attempts) for s in sink.at_barrier if s]
    assert stored == [(TaskPhase.RUNNING, 1), (TaskPhase.RUNNING, 2)]


async def test_a_retried_run_s_task_gets_its_retries_anew_across_a_restart(
    tasks: TaskRegistry, bodies: list[int]
) -> None:
    """`attempts` counts on after a retry of the run; `retries` counts from the retry."""
    saved = (await interrupted(tasks, body(retries=1))).published[-1][0]
    saved.tasks["pay"].attempts = 5  # five attempts in earlier runs of the graph
    saved.tasks["pay"].attempts_before = 4  # the interrupted one is the 1st of this run
    status = await make_runner(body(retries=1), tasks, RecordingSink(), status=saved).run()
    assert status.tasks["pay"].phase is TaskPhase.SUCCEEDED
    assert status.tasks["pay"].attempts == 6
    assert bodies == [1, 2]
