"""Folding a big run's task map (models/folding.py) and the patches that store it."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from stageflow.kube import StoredTasks, status_patch
from stageflow.models.folding import (
    DERIVED_JOB_NAME,
    INLINE_TASKS,
    MAX_FOLDED_GROUPS,
    MAX_MESSAGE,
    MESSAGE_NOT_KEPT,
    SAME_TASK,
    fold,
    folded,
    selected,
    summary,
    unfold,
)
from stageflow.models.naming import job_name
from stageflow.models.records import RunEvent
from stageflow.models.status import CachedFrom, Decision, RunStatus, TaskPhase, TaskStatus
from stageflow.models.task_ids import compress_ids, expand_ids

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def done(**fields: Any) -> TaskStatus:
    return TaskStatus(
        phase=TaskPhase.SUCCEEDED,
        attempts=1,
        executor="inprocess",
        started_at=NOW,
        finished_at=NOW,
        **fields,
    )


def big_status(count: int = INLINE_TASKS + 10) -> RunStatus:
    tasks = {"gen": done(outputs={"n": count}), "big": TaskStatus(phase=TaskPhase.RUNNING)}
    tasks |= {f"big[{index}]": done() for index in range(count)}
    return RunStatus(tasks=tasks)


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386, as the apiserver applies a merge patch."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            merge(target[key], value)
        else:
            target[key] = value
    return target


def test_ids_are_compressed_to_ranges_and_back() -> None:
    ids = ["a", "x[3]", "x[0]", "x[1]", "b", "y[7]", "x[5]", "x[4]"]
    assert compress_ids(ids) == ["a", "b", "x[0-1]", "x[3-5]", "y[7]"]
    assert list(expand_ids(compress_ids(ids))) == [
        "a",
        "b",
        "x[0]",
        "x[1]",
        "x[3]",
        "x[4]",
        "x[5]",
        "y[7]",
    ]


def test_alike_entries_fold_into_one_group_and_unfold_without_their_times() -> None:
    status = big_status()
    status.tasks["big[7]"] = done(outputs=[1, 2])
    status.tasks["big[9]"] = TaskStatus(phase=TaskPhase.FAILED, attempts=3, message="boom")
    later = NOW.replace(hour=1)
    status.tasks["big[8]"] = TaskStatus(phase=TaskPhase.RUNNING, next_attempt_at=NOW)
    status.tasks["big[10]"] = TaskStatus(phase=TaskPhase.RUNNING, next_attempt_at=later)
    inline, groups = fold(status.tasks)
    assert inline == {}  # only an approval waiting for a person stays whole
    assert [(group.like.phase, group.count) for group in groups] == [
        (TaskPhase.SUCCEEDED, INLINE_TASKS + 8),
        (TaskPhase.RUNNING, 1),  # the forEach task
        (TaskPhase.RUNNING, 2),  # waiting out a backoff: due at the latest of theirs
        (TaskPhase.FAILED, 1),
    ]
    assert groups[2].like.next_attempt_at == later
    assert groups[0].outputs == {"gen": {"n": INLINE_TASKS + 10}, "big[7]": [1, 2]}
    stored = RunStatus.model_validate(folded(status).to_json_dict())
    back = unfold(stored)
    assert set(back.tasks) == set(status.tasks)
    assert back.tasks["big[7]"].outputs == [1, 2]
    assert back.tasks["big[6]"].outputs is None
    assert back.tasks["big[8]"].next_attempt_at == later
    assert back.tasks["big[9]"].message == "boom"
    assert back.tasks["big[9]"].attempts == 3
    assert back.tasks["big[0]"].started_at is None  # what folding gives up
    assert back.tasks["big"].phase is TaskPhase.RUNNING


def test_a_small_run_is_stored_whole() -> None:
    status = RunStatus(tasks={f"t{index}": done() for index in range(INLINE_TASKS)})
    assert folded(status) is status


def test_past_the_group_limit_folded_entries_share_one_message() -> None:
    status = big_status()
    for index in range(3 * MAX_FOLDED_GROUPS):
        status.tasks[f"big[{index}]"] = TaskStatus(phase=TaskPhase.FAILED, message=f"item {index}")
    _inline, groups = fold(status.tasks)
    assert len(groups) <= MAX_FOLDED_GROUPS
    messages = [group.like.message for group in groups if group.like.phase is TaskPhase.FAILED]
    assert MESSAGE_NOT_KEPT in messages
    assert len(json.dumps([group.to_json_dict() for group in groups])) < 64_000
    back = unfold(folded(status))
    assert sum(1 for task in back.tasks.values() if task.phase is TaskPhase.FAILED) == (
        3 * MAX_FOLDED_GROUPS
    )


def test_a_folded_entry_wins_over_a_stale_whole_one() -> None:
    """`folded` is replaced by every write, `tasks` only where it changed: a whole entry an
    out-of-date writer left behind is older than the group that also names it."""
    stored = RunStatus.model_validate(folded(big_status()).to_json_dict())
    stored.tasks["big[3]"] = TaskStatus(phase=TaskPhase.RUNNING)
    assert unfold(stored).tasks["big[3]"].phase is TaskPhase.SUCCEEDED


def test_patches_fold_a_growing_run_and_write_it_whole_when_it_is_small_again() -> None:
    small = RunStatus(tasks={"gen": done(), "big": TaskStatus(phase=TaskPhase.RUNNING)})
    patch, stored = status_patch(
        small, frozenset(small.tasks), observed_generation=1, condition_since=NOW
    )
    obj = merge({}, json.loads(json.dumps(patch)))
    assert set(obj["status"]["tasks"]) == {"gen", "big"}
    assert "folded" not in obj["status"]

    big = big_status()
    big.tasks["ask"] = TaskStatus(phase=TaskPhase.WAITING)
    patch, stored = status_patch(
        big, frozenset(big.tasks), observed_generation=1, condition_since=NOW, stored=stored
    )
    assert patch["status"]["tasks"]["gen"] is None  # folded now: removed from `tasks`
    obj = merge(obj, json.loads(json.dumps(patch)))
    assert set(obj["status"]["tasks"]) == {"ask"}  # waiting for a person: whole
    assert len(json.dumps(obj)) < 2000
    assert stored == StoredTasks.of(obj)

    big.tasks["ask"] = done()
    patch, stored = status_patch(
        big, frozenset({"ask"}), observed_generation=1, condition_since=NOW, stored=stored
    )
    obj = merge(obj, json.loads(json.dumps(patch)))
    assert obj["status"]["tasks"] == {}
    assert unfold(RunStatus.model_validate(obj["status"])).tasks.keys() == big.tasks.keys()

    patch, stored = status_patch(  # a retry dropped the instances: small again
        small, frozenset(), observed_generation=1, condition_since=NOW, stored=stored
    )
    obj = merge(obj, json.loads(json.dumps(patch)))
    assert "folded" not in obj["status"]
    assert set(obj["status"]["tasks"]) == {"gen", "big"}
    assert not stored.folded


def test_a_summary_lists_declared_tasks_and_the_instances_that_need_a_look() -> None:
    status = big_status(5000)
    for index in range(150):
        status.tasks[f"big[{index}]"] = TaskStatus(phase=TaskPhase.RUNNING)
    status.tasks["big[4000]"] = TaskStatus(phase=TaskPhase.FAILED, message="boom")
    shown = summary(status)
    listed = [task_id for task_id in shown.tasks if task_id.startswith("big[")]
    assert len(listed) == 100
    assert "big[4000]" in listed
    assert {"gen", "big"} <= set(shown.tasks)
    assert shown.fanouts is not None
    assert shown.fanouts["big"].total == 5000
    assert shown.fanouts["big"].phases == {"Running": 150, "Failed": 1, "Succeeded": 4849}
    assert shown.omitted == len(status.tasks) - len(shown.tasks)
    only = selected(status, frozenset({TaskPhase.FAILED}))
    assert list(only.tasks) == ["big[4000]"]
    assert len(selected(status, None).tasks) == len(status.tasks)


def test_job_instances_fold_by_their_derived_names_and_get_them_back() -> None:
    run = "0f9c2d52-7a1b-4a4e-9c0e-3f1b2a6d8e11"
    tasks = {
        f"load[{index}]": TaskStatus(
            phase=TaskPhase.SUCCEEDED,
            attempts=2,
            executor="job",
            job_name=job_name(run, f"load[{index}]", 2),
        )
        for index in range(INLINE_TASKS + 1)
    }
    tasks["load[5]"].job_name = "made-by-hand"  # not the derived name: kept as it is
    stored = folded(RunStatus(tasks=tasks), run_id=run)
    assert stored.folded is not None
    assert [group.count for group in stored.folded] == [INLINE_TASKS, 1]
    assert stored.folded[0].like.job_name == DERIVED_JOB_NAME
    back = unfold(RunStatus.model_validate(stored.to_json_dict()), run_id=run)
    assert back.tasks == tasks
    # without the run id (it is not known) nothing folds by name
    assert len(folded(RunStatus(tasks=tasks)).folded or []) == INLINE_TASKS + 1


def test_a_summary_of_a_run_read_folded_is_the_summary_of_it_whole() -> None:
    """The API summarises a big run as Redis holds it (folded), making only what it shows."""
    status = big_status(5000)
    for index in range(150):
        status.tasks[f"big[{index}]"] = TaskStatus(phase=TaskPhase.RUNNING, attempts=1)
    for index in range(4000, 4120):
        status.tasks[f"big[{index}]"] = TaskStatus(phase=TaskPhase.FAILED, message=f"no {index}")
    whole = summary(status)
    stored = RunStatus.model_validate(folded(status).to_json_dict())
    read = summary(stored)
    assert read.folded is None
    assert read.fanouts == whole.fanouts
    assert read.omitted == whole.omitted
    assert set(read.tasks) == set(whole.tasks)
    instances = [task_id for task_id in read.tasks if task_id.startswith("big[")]
    assert len(instances) == 100
    assert all(read.tasks[task_id].phase is TaskPhase.FAILED for task_id in instances)


def test_cached_and_decided_entries_fold_and_come_back_whole() -> None:
    """Their `cachedFrom` and `decision` are models: folded by their JSON (a cached
    instance's `cachedFrom` naming its own id, as after a re-run of the same workflow, as
    one marker), so ten thousand cache hits are one group."""
    earlier = "5b0c2d52-7a1b-4a4e-9c0e-3f1b2a6d8e11"
    tasks = {
        f"big[{index}]": TaskStatus(
            phase=TaskPhase.SUCCEEDED,
            cached=True,
            cached_from=CachedFrom(run_id=earlier, task=f"big[{index}]"),
            outputs={"n": index} if index < 3 else None,
        )
        for index in range(INLINE_TASKS + 10)
    }
    tasks["other"] = TaskStatus(
        phase=TaskPhase.SUCCEEDED, cached=True, cached_from=CachedFrom(run_id=earlier, task="x")
    )
    tasks["ask"] = TaskStatus(
        phase=TaskPhase.SUCCEEDED, decision=Decision(approved=True, by="ana", at=NOW)
    )
    stored = folded(RunStatus(tasks=tasks))
    assert stored.folded is not None
    assert [group.count for group in stored.folded] == [INLINE_TASKS + 10, 1, 1]
    assert stored.folded[0].like.cached_from == CachedFrom(run_id=earlier, task=SAME_TASK)
    back = unfold(RunStatus.model_validate(stored.to_json_dict()))
    assert back.tasks == tasks


def test_messages_are_stored_cut_short_and_their_groups_bounded() -> None:
    status = big_status()
    for index in range(200):
        status.tasks[f"big[{index}]"] = TaskStatus(
            phase=TaskPhase.FAILED, message=f"{index}: " + "x" * 8000
        )
    groups = fold(status.tasks)[1]
    assert max(len(group.like.message or "") for group in groups) == MAX_MESSAGE
    assert len(json.dumps([group.to_json_dict() for group in groups])) < 150_000


def test_updates_of_a_big_run_list_at_most_100_instances_per_fan_out() -> None:
    status = big_status(5000)
    for index in range(3000):
        status.tasks[f"big[{index}]"] = TaskStatus(phase=TaskPhase.FAILED, message="down")
    event = RunEvent.of("run", status, frozenset(status.tasks))
    assert set(event.tasks) - {"gen", "big"} <= {f"big[{index}]" for index in range(3000)}
    assert len(event.tasks) == 2 + 100
    assert event.omitted == len(status.tasks) - 102


def test_a_selection_is_limited_per_fan_out_failed_first() -> None:
    """`?tasks=Failed,Running&limit=1000` lists each forEach task's own instances: one
    with many running does not crowd out another's failures."""
    tasks = {f"a[{index}]": TaskStatus(phase=TaskPhase.RUNNING) for index in range(1500)}
    tasks |= {f"b[{index}]": TaskStatus(phase=TaskPhase.FAILED) for index in range(5)}
    tasks |= {"a": TaskStatus(phase=TaskPhase.RUNNING), "b": TaskStatus(phase=TaskPhase.FAILED)}
    status = RunStatus(tasks=tasks)
    phases = frozenset({TaskPhase.FAILED, TaskPhase.RUNNING})
    for read in (status, RunStatus.model_validate(folded(status).to_json_dict())):
        chosen = selected(read, phases, limit=1000).tasks
        assert sum(1 for task_id in chosen if task_id.startswith("b[")) == 5
        assert sum(1 for task_id in chosen if task_id.startswith("a[")) == 1000
        assert {"a", "b"} <= set(chosen)
