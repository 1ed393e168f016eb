"""Folding: how a big run's task map is stored small (docs/big-runs.md).

A run's status keeps an entry per task and per forEach instance. At ten thousand
entries that is megabytes, past what etcd takes for one object (Argo Workflows
compresses and then offloads its node map for the same reason). Most entries of a
big run are alike, though: ten thousand `Succeeded, 1 attempt, inprocess`. So the
stored form of a run with more than `INLINE_TASKS` entries keeps

- in `tasks`, whole, the entries waiting out a retry's backoff (their `nextAttemptAt`
  is what a resumed run waits for) or for an approval, and
- in `folded`, every other entry, grouped with those alike: one `like` entry (the
  shared fields), the members' ids (`NAME[a-b]` for a range of instances), and the
  outputs of those that have some, by id. Running entries fold too (`Running, 1
  attempt`), so a thousand instances under way cost a group, not a thousand entries.

What a folded entry loses is its own `startedAt`/`finishedAt` (and, past
`MAX_FOLDED_GROUPS` groups, its message): never what a resumed run needs, which
is which tasks finished, how, with what outputs, and how many attempts each has
made. `unfold` gives back the map the engine runs on. A run of at most
`INLINE_TASKS` entries is stored as it always was, every entry whole.

Beside it, `fanout_summaries` counts each forEach task's instances by phase: what
the API, the CLI, the page and the streams show of a big run instead of every
instance.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from stageflow.models.naming import job_name
from stageflow.models.status import (
    FanoutSummary,
    FoldedTasks,
    RunStatus,
    TaskPhase,
    TaskStatus,
)
from stageflow.models.task_ids import compress_ids, expand_ids, instance_of, part_size

INLINE_TASKS = 1000  # a run with more task entries than this is stored folded ("big")
MAX_FOLDED_GROUPS = 200  # past this many groups, folded entries lose their messages
MESSAGE_NOT_KEPT = "(message not kept: the run has too many different messages to store)"
LISTED_PHASES = (TaskPhase.RUNNING, TaskPhase.WAITING, TaskPhase.FAILED)
# What an entry's group is made of: every field but its own times and outputs.
_UNSHARED = frozenset({"started_at", "finished_at", "outputs", "next_attempt_at"})
_SHARED = tuple(name for name in TaskStatus.model_fields if name not in _UNSHARED)


def is_big(status: RunStatus) -> bool:
    return status.entry_count() > INLINE_TASKS


_JOB = _SHARED.index("job_name")
# A Job task's entry keeps its Job's name; a folded one whose name is the one derived from
# the run, the task and the attempt (models/naming.py) says this instead, so ten thousand
# Job instances fold into one group rather than ten thousand.
DERIVED_JOB_NAME = "(named by run, task and attempt)"


def _shared(task_id: str, task: TaskStatus, run_id: str | None) -> tuple[Any, ...]:
    key = tuple(getattr(task, name) for name in _SHARED)
    named = task.job_name
    if (
        named is not None
        and run_id is not None
        and named == job_name(run_id, task_id, task.attempts)
    ):
        key = (*key[:_JOB], DERIVED_JOB_NAME, *key[_JOB + 1 :])
    return key


def _foldable(task: TaskStatus) -> bool:
    """Any entry but one waiting out a retry's backoff (its `nextAttemptAt` is what a
    resumed run waits for) or for a person's decision (an approval's own times)."""
    return task.next_attempt_at is None and task.phase is not TaskPhase.WAITING


def fold(
    tasks: Mapping[str, TaskStatus], *, run_id: str | None = None
) -> tuple[dict[str, TaskStatus], list[FoldedTasks]]:
    """(the entries kept whole, the groups of the rest). Deterministic for one map: the
    operator computes it on every status write to know which entries to remove. With the
    `run_id`, Job names derived from it are folded as DERIVED_JOB_NAME."""
    inline: dict[str, TaskStatus] = {}
    groups: dict[tuple[Any, ...], list[str]] = {}
    for task_id, task in tasks.items():
        if _foldable(task):
            groups.setdefault(_shared(task_id, task, run_id), []).append(task_id)
        else:
            inline[task_id] = task
    if len(groups) > MAX_FOLDED_GROUPS:
        groups = _without_messages(groups)
    return inline, [_group(tasks, key, members) for key, members in groups.items()]


def _without_messages(groups: dict[tuple[Any, ...], list[str]]) -> dict[tuple[Any, ...], list[str]]:
    """Too many kinds of entry (each failure with its own message): the largest groups
    keep their message, the rest share MESSAGE_NOT_KEPT (the task logs keep what they
    said). Which keep it is decided by size, then key order: the same for the same map."""
    message = _SHARED.index("message")
    ordered = sorted(groups.items(), key=lambda item: -len(item[1]))
    kept = dict(ordered[: MAX_FOLDED_GROUPS // 2])
    for key, members in ordered[MAX_FOLDED_GROUPS // 2 :]:
        plain = (*key[:message], MESSAGE_NOT_KEPT if key[message] else None, *key[message + 1 :])
        kept.setdefault(plain, []).extend(members)
    return kept


def _group(
    tasks: Mapping[str, TaskStatus], key: tuple[Any, ...], members: list[str]
) -> FoldedTasks:
    like = TaskStatus.model_validate(dict(zip(_SHARED, key, strict=True)))
    outputs = {tid: tasks[tid].outputs for tid in members if tasks[tid].outputs is not None}
    return FoldedTasks(
        like=like, tasks=compress_ids(members), count=len(members), outputs=outputs or None
    )


def unfold(status: RunStatus, *, run_id: str | None = None) -> RunStatus:
    """`status` with every entry in `tasks` (in place; returned for chaining). Folded
    entries come back without their own times. An id found in both places (a whole entry
    a write from an out-of-date view of the object left behind) is the folded one's:
    `folded` is replaced whole by every write, so it is never older. With the `run_id`,
    a DERIVED_JOB_NAME is given back as the name it stands for."""
    if not status.folded:
        status.folded = None
        return status
    tasks = dict(status.tasks)
    for group in status.folded:
        for task_id in expand_ids(group.tasks):
            tasks[task_id] = _member(group, task_id, run_id)
    status.tasks, status.folded = tasks, None
    return status


def _member(group: FoldedTasks, task_id: str, run_id: str | None) -> TaskStatus:
    """One member's entry, as whole as a group keeps it."""
    entry = group.like.model_copy()
    if group.outputs:
        entry.outputs = group.outputs.get(task_id)
    if run_id is not None and entry.job_name == DERIVED_JOB_NAME:
        entry.job_name = job_name(run_id, task_id, entry.attempts)
    return entry


def folded(status: RunStatus, *, run_id: str | None = None) -> RunStatus:
    """The stored form of `status`: itself if it is small (or folded already), else a copy
    with its alike entries folded (the task entries themselves are shared, not copied)."""
    if status.folded or not is_big(status):
        return status
    inline, groups = fold(status.tasks, run_id=run_id)
    return status.model_copy(update={"tasks": inline, "folded": groups})


def fanout_summaries(
    tasks: Mapping[str, TaskStatus], groups: Iterable[FoldedTasks] = ()
) -> dict[str, FanoutSummary]:
    """Each forEach task's instances counted by phase: of whole entries, and of folded
    `groups` by their ranges (never expanded)."""
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for task_id, task in tasks.items():
        instance = instance_of(task_id)
        if instance is not None:
            counts[instance[0]][task.phase.value] += 1
    for group in groups:
        for part in group.tasks:
            parent, size = part_size(part)
            if parent is not None:
                counts[parent][group.like.phase.value] += size
    return {
        parent: FanoutSummary(total=sum(phases.values()), phases=dict(phases))
        for parent, phases in counts.items()
    }


def entries_of(
    status: RunStatus, task_ids: Iterable[str], *, run_id: str | None = None
) -> dict[str, TaskStatus]:
    """The entries of `task_ids`, whole or folded (a folded one without its times), for a
    status read as stored: what an update of them says, without unfolding the rest."""
    wanted = set(task_ids)
    found = {task_id: status.tasks[task_id] for task_id in wanted if task_id in status.tasks}
    for group in status.folded or ():
        for task_id in expand_ids(group.tasks):
            if task_id in wanted:
                found[task_id] = _member(group, task_id, run_id)
    return found


def listed(task_id: str, task: TaskStatus) -> bool:
    """Shown whole in a big run's summary: a declared task, or an instance that is under
    way or failed (what a person looks at); the rest are counted in `fanouts`."""
    return instance_of(task_id) is None or task.phase in LISTED_PHASES


SUMMARY_INSTANCES = 100  # instances a big run's summary lists per forEach task


def summary(
    status: RunStatus, *, limit: int = SUMMARY_INSTANCES, run_id: str | None = None
) -> RunStatus:
    """What `GET /workflow/{id}` and a stream's snapshot show of a run: a small run whole;
    a big one with its declared tasks, at most `limit` instances per forEach task that are
    under way or failed (failed first), and `fanouts` counting them all. A status read
    folded (as stored) is summarised from its groups: only the members shown are made."""
    groups = status.folded or []
    fanouts = fanout_summaries(status.tasks, groups)
    if not is_big(status):
        status = unfold(status, run_id=run_id) if groups else status
        return status.model_copy(update={"fanouts": fanouts or None}) if fanouts else status
    declared: dict[str, TaskStatus] = {}
    found: dict[tuple[str, bool], dict[str, TaskStatus]] = defaultdict(dict)  # (task, failed)

    def consider(task_id: str, task: TaskStatus) -> None:
        instance = instance_of(task_id)
        if instance is None:
            declared[task_id] = task
        elif task.phase in LISTED_PHASES:
            shown = found[instance[0], task.phase is TaskPhase.FAILED]
            if len(shown) < limit:
                shown[task_id] = task

    for task_id, task in status.tasks.items():
        consider(task_id, task)
    for group in groups:
        listed_group = group.like.phase in LISTED_PHASES
        for part in group.tasks:
            parent, _ = part_size(part)
            if parent is None:
                consider(part, _member(group, part, run_id))
                continue
            if not listed_group:
                continue
            shown = found[parent, group.like.phase is TaskPhase.FAILED]
            for task_id in expand_ids([part]):
                if len(shown) >= limit:
                    break
                shown[task_id] = _member(group, task_id, run_id)
    tasks = dict(declared)
    for parent in dict.fromkeys(parent for parent, _ in found):
        instances = [*found[parent, True].items(), *found[parent, False].items()]
        tasks.update(instances[:limit])  # failed first
    return status.model_copy(
        update={
            "tasks": tasks,
            "folded": None,
            "fanouts": fanouts,
            "omitted": status.entry_count() - len(tasks),
        }
    )


def selected(
    status: RunStatus, phases: frozenset[TaskPhase] | None, *, limit: int | None = None
) -> RunStatus:
    """Every entry (`phases` None), or only those in `phases`, with `fanouts`; with `limit`,
    at most that many instances (declared tasks are all kept): the answer of
    `GET /workflow/{id}?tasks=all` and `?tasks=Failed,Running&limit=100`."""
    status = unfold(status) if status.folded else status
    fanouts = fanout_summaries(status.tasks) or None
    if phases is None and limit is None:
        return status.model_copy(update={"fanouts": fanouts})
    tasks: dict[str, TaskStatus] = {}
    instances = 0
    for task_id, task in status.tasks.items():
        if phases is not None and task.phase not in phases:
            continue
        if instance_of(task_id) is not None:
            if limit is not None and instances >= limit:
                continue
            instances += 1
        tasks[task_id] = task
    return status.model_copy(
        update={"tasks": tasks, "fanouts": fanouts, "omitted": len(status.tasks) - len(tasks)}
    )
