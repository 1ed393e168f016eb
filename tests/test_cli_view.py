"""How the CLI lays a run out: stages, DAG levels (references count), forEach instances."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stageflow.cli.view import age, dag_levels, duration, sections, transitions
from stageflow.engine import RunPhase, RunStatus, TaskPhase, TaskSpec, TaskStatus, WorkflowRequest
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
