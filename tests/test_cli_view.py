"""How the CLI lays a run out: stages, DAG levels (references count), forEach instances
(a fan-out collapsed into its counts, its failed and running instances)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

from rich.console import Console

from stageflow.cli.view import (
    SHOWN_INSTANCES,
    age,
    dag_levels,
    duration,
    run_view,
    sections,
    transitions,
)
from stageflow.engine import RunPhase, RunStatus, TaskPhase, TaskSpec, TaskStatus, WorkflowRequest
from stageflow.models.folding import summary
from stageflow.models.records import RunRecord

T0 = datetime(2026, 11, 22, 5, 0, tzinfo=UTC)


def record(spec: WorkflowRequest, tasks: dict[str, TaskPhase]) -> RunRecord:
    status = RunStatus(
        phase=RunPhase.RUNNING,
        tasks={task_id: TaskStatus(phase=phase) for task_id, phase in tasks.items()},
    )
    return RunRecord(run_id="r", created_at=T0, spec=spec, status=status)


def test_dag_levels_follow_depends_on_and_references() -> None:
    tasks = [
        TaskSpec(name="a", task="echo"),
        TaskSpec(name="b", task="echo", params={"rows": "{{ tasks.a.outputs.rows }}"}),
        TaskSpec(name="c", task="echo", when="{{ tasks.b.outputs.rows }} > 0"),
        TaskSpec(name="d", task="echo", depends_on=["a"]),
        TaskSpec(name="e", task="echo"),
    ]
    assert dag_levels(tasks) == [["a", "e"], ["b", "d"], ["c"]]


def test_stages_keep_their_order_and_instances_follow_their_task() -> None:
    spec = WorkflowRequest.model_validate(
        {
            "workflow": [
                {"type": "parallel", "tasks": [{"name": "fan", "task": "echo", "forEach": [1, 2]}]},
                {"type": "sequential", "tasks": [{"name": "last", "task": "task_c"}]},
            ]
        }
    )
    run = record(
        spec,
        {
            "fan": TaskPhase.RUNNING,
            "last": TaskPhase.PENDING,
            "fan[1]": TaskPhase.RUNNING,
            "fan[0]": TaskPhase.SUCCEEDED,
        },
    )
    laid_out = [(section.title, section.task_ids) for section in sections(run)]
    assert laid_out == [
        ("stage 1 · parallel", ["fan", "fan[0]", "fan[1]"]),
        ("stage 2 · sequential", ["last"]),
    ]


def test_plain_lines_say_only_what_changed() -> None:
    spec = WorkflowRequest.model_validate({"dag": [{"name": "a", "task": "echo"}]})
    before = record(spec, {"a": TaskPhase.RUNNING})
    after = before.model_copy(deep=True)
    assert transitions(before, after, now=T0) == []
    after.status.tasks["a"].phase = TaskPhase.FAILED
    after.status.tasks["a"].message = "boom"
    after.status.phase = RunPhase.FAILED
    assert transitions(before, after, now=T0) == [
        "05:00:00  a                    Failed      boom",
        "05:00:00  run Failed (0/0)",
    ]


def test_durations_and_ages_read_like_kubectl() -> None:
    assert duration(None, None) == ""
    assert duration(T0, T0 + timedelta(seconds=1.5)) == "1.50s"
    assert duration(T0, T0 + timedelta(seconds=185)) == "3m05s"
    assert duration(T0, None, now=T0 + timedelta(hours=2, minutes=5)) == "2h05m"
    assert age(T0, now=T0 + timedelta(seconds=42)) == "42s"
    assert age(T0, now=T0 + timedelta(days=3, hours=1)) == "3d"


def big_fan_out(*, failed: int = 3, running: int = 7) -> RunRecord:
    """A run whose forEach task `fan` has 10,000 instances: `failed` failed, `running`
    running, the rest succeeded; `last` waits for it."""
    spec = WorkflowRequest.model_validate(
        {
            "dag": [
                {"name": "fan", "task": "echo", "forEach": {"count": 10_000}},
                {"name": "last", "task": "task_c", "dependsOn": ["fan"]},
            ]
        }
    )
    tasks = {
        "fan": TaskStatus(phase=TaskPhase.RUNNING, started_at=T0),
        "last": TaskStatus(phase=TaskPhase.PENDING),
    }
    for index in range(10_000):
        if index < failed:
            entry = TaskStatus(phase=TaskPhase.FAILED, attempts=1, message=f"item {index} is bad")
        elif index >= 10_000 - running:
            entry = TaskStatus(phase=TaskPhase.RUNNING, attempts=1, started_at=T0)
        else:
            entry = TaskStatus(phase=TaskPhase.SUCCEEDED, attempts=1)
        tasks[f"fan[{index}]"] = entry
    status = RunStatus(phase=RunPhase.RUNNING, tasks=tasks)
    return RunRecord(run_id="r", created_at=T0, spec=spec, status=status)


def rendered(run: RunRecord) -> list[str]:
    console = Console(width=160, file=io.StringIO(), record=True)
    console.print(run_view(run, now=T0 + timedelta(seconds=2)))
    return [line.rstrip() for line in console.export_text().splitlines()]


def test_a_fan_out_of_ten_thousand_is_one_line_with_its_counts_then_failed_and_running() -> None:
    lines = rendered(big_fan_out())
    assert len(lines) <= 25, "\n".join(lines)
    (fan,) = [line for line in lines if " fan " in f" {line} "]
    assert "▶ Running" in fan
    assert "10,000 instances: ✓ 9,990 Succeeded ▶ 7 Running ✗ 3 Failed" in fan
    instances = [line.split()[0] for line in lines if line.strip().startswith("fan[")]
    assert instances == [
        "fan[0]",  # failed first, by index
        "fan[1]",
        "fan[2]",
        "fan[9993]",
        "fan[9994]",
        "fan[9995]",
        "fan[9996]",
        "fan[9997]",
    ]
    assert any("item 2 is bad" in line for line in lines)
    assert [line.strip() for line in lines if "more" in line] == ["… and 2 more running"]
    assert any("last" in line.split() for line in lines)


def test_the_counts_come_from_fanouts_when_the_record_lists_only_some_instances() -> None:
    """A big run's summary (GET /workflow/{id}) lists at most 100 instances per phase; its
    `fanouts` count them all, and `… and N more` says how many are not shown."""
    run = big_fan_out(failed=150, running=200)
    summarised = run.model_copy(update={"status": summary(run.status)})
    assert summarised.status.omitted is not None
    lines = rendered(summarised)
    assert len(lines) <= 25, "\n".join(lines)
    assert any(
        "10,000 instances: ✓ 9,650 Succeeded ▶ 200 Running ✗ 150 Failed" in line for line in lines
    )
    for phase, total in (("Failed", 150), ("Running", 200)):
        shown = [line for line in lines if "fan[" in line and f" {phase} " in f"{line} "]
        assert len(shown) <= SHOWN_INSTANCES
        (more,) = [line.strip() for line in lines if f"more {phase.lower()}" in line]
        assert more == f"… and {total - len(shown)} more {phase.lower()}"


def test_plain_lines_of_a_fan_out_say_its_failures_and_its_counts_by_tenths() -> None:
    spec = WorkflowRequest.model_validate(
        {"dag": [{"name": "fan", "task": "echo", "forEach": {"count": 100}}]}
    )
    pending = {f"fan[{index}]": TaskPhase.PENDING for index in range(100)}
    before = record(spec, {"fan": TaskPhase.RUNNING, **pending})
    after = before.model_copy(deep=True)
    for index in range(12):  # 12 finish, one of them failing; 3 more start
        after.status.tasks[f"fan[{index}]"].phase = TaskPhase.SUCCEEDED
    after.status.tasks["fan[5]"].phase = TaskPhase.FAILED
    after.status.tasks["fan[5]"].message = "boom"
    for index in range(12, 15):
        after.status.tasks[f"fan[{index}]"].phase = TaskPhase.RUNNING
    assert transitions(before, after, now=T0) == [
        "05:00:00  fan[5]               Failed      boom",
        "05:00:00  fan                  100 instances: ✓ 11 Succeeded ▶ 3 Running ✗ 1 Failed "
        "· 85 Pending",
    ]
    later = after.model_copy(deep=True)
    later.status.tasks["fan[12]"].phase = TaskPhase.SUCCEEDED  # still one tenth: no line
    assert transitions(after, later, now=T0) == []
    first = transitions(None, before, now=T0)
    assert first == [
        "05:00:00  fan                  Running",
        "05:00:00  fan                  100 instances: ✓ 0 Succeeded ▶ 0 Running ✗ 0 Failed "
        "· 100 Pending",
        "05:00:00  run Running (0/0)",
    ]
