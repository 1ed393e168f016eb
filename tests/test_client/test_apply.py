"""`apply(record, event)`: the live run folded from a run's events, a big run's too (its
updates name only the instances under way or failed, and count every one in `fanouts`)."""

from __future__ import annotations

from datetime import UTC, datetime

from stageflow.client import RunEvent, RunPhase, RunRecord, TaskPhase, apply
from stageflow.models import WorkflowRequest
from stageflow.models.folding import summary
from stageflow.models.status import RunStatus, TaskStatus

T0 = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)
COUNT = 2000


def fan_out(phases: dict[int, TaskPhase]) -> RunStatus:
    """`fan` with COUNT instances, Pending but for those in `phases` (by index)."""
    tasks = {"fan": TaskStatus(phase=TaskPhase.RUNNING)}
    for index in range(COUNT):
        tasks[f"fan[{index}]"] = TaskStatus(phase=phases.get(index, TaskPhase.PENDING))
    return RunStatus(phase=RunPhase.RUNNING, tasks=tasks)


def snapshot(status: RunStatus) -> RunRecord:
    spec = WorkflowRequest.model_validate(
        {"dag": [{"name": "fan", "task": "noop", "forEach": {"count": COUNT}}]}
    )
    return RunRecord(run_id="r", created_at=T0, spec=spec, status=summary(status))


def test_a_big_runs_updates_refresh_its_counts_and_forget_instances_that_finished() -> None:
    running = {index: TaskPhase.RUNNING for index in range(10)}
    record = snapshot(fan_out(running))
    assert record.status.omitted is not None  # a big run, summarised
    assert record.status.fanouts is not None
    assert record.status.fanouts["fan"].phases == {"Running": 10, "Pending": COUNT - 10}

    # 0-9 succeed (the update does not name them), 10-14 start, 15 fails.
    later = {index: TaskPhase.SUCCEEDED for index in range(10)}
    later |= {index: TaskPhase.RUNNING for index in range(10, 15)}
    later[15] = TaskPhase.FAILED
    status = fan_out(later)
    changed = frozenset(f"fan[{index}]" for index in range(16))
    event = RunEvent.of("r", status, changed)
    assert event.omitted == 10  # the ten that succeeded are only counted
    assert set(event.tasks) == changed - {f"fan[{i}]" for i in range(10)}
    followed = apply(record, event)

    assert followed.status.fanouts == event.fanouts
    assert followed.status.fanouts is not None
    assert followed.status.fanouts["fan"].phases == {
        "Succeeded": 10,
        "Running": 5,
        "Failed": 1,
        "Pending": COUNT - 16,
    }
    instances = {tid: t.phase for tid, t in followed.status.tasks.items() if "[" in tid}
    # No more Running entries than the counts say: the newest named are kept.
    assert instances == {
        **{f"fan[{index}]": TaskPhase.RUNNING for index in range(10, 15)},
        "fan[15]": TaskPhase.FAILED,
    }
    assert followed.status.omitted == COUNT - 6


def test_a_small_runs_updates_are_merged_whole_with_their_counts() -> None:
    spec = WorkflowRequest.model_validate(
        {"dag": [{"name": "fan", "task": "noop", "forEach": {"count": 2}}]}
    )
    status = RunStatus(
        phase=RunPhase.RUNNING,
        tasks={
            "fan": TaskStatus(phase=TaskPhase.RUNNING),
            "fan[0]": TaskStatus(phase=TaskPhase.RUNNING),
            "fan[1]": TaskStatus(phase=TaskPhase.PENDING),
        },
    )
    record = RunRecord(run_id="r", created_at=T0, spec=spec, status=summary(status))
    status.tasks["fan[0]"] = TaskStatus(phase=TaskPhase.SUCCEEDED)
    followed = apply(record, RunEvent.of("r", status, frozenset({"fan[0]"})))
    assert followed.status.omitted is None
    assert followed.status.tasks["fan[0]"].phase is TaskPhase.SUCCEEDED
    assert followed.status.fanouts is not None
    assert followed.status.fanouts["fan"].phases == {"Succeeded": 1, "Pending": 1}
