"""Folding: how a big run's task map is stored small (docs/big-runs.md).

A run's status keeps an entry per task and per forEach instance. At ten thousand
entries that is megabytes, past what etcd takes for one object (Argo Workflows
compresses and then offloads its node map for the same reason). Most entries of a
big run are alike, though: ten thousand `Succeeded, 1 attempt, inprocess`. So the
stored form of a run with more than `INLINE_TASKS` entries keeps

- in `tasks`, whole, the approvals waiting for a person (declared tasks, never many), and
- in `folded`, every other entry, grouped with those alike: one `like` entry (the
  shared fields, its message cut to MAX_MESSAGE), the members' ids (`NAME[a-b]` for a
  range of instances), and the outputs of those that have some, by id. Running entries
  fold too (`Running, 1 attempt`), so a thousand instances under way cost a group, not
  a thousand entries; those waiting out a retry's backoff fold with the group's latest
  `nextAttemptAt` (a resumed run waits that long: a little longer at worst).

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
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import BaseModel

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
MAX_MESSAGE = 1024  # characters of a folded entry's message (its task's log has the rest)
# What an entry's group is made of: every field but its own times and outputs (a backoff's
# `nextAttemptAt` becomes the group's latest).
_UNSHARED = frozenset({"started_at", "finished_at", "outputs", "next_attempt_at"})
_SHARED = tuple(name for name in TaskStatus.model_fields if name not in _UNSHARED)
_MESSAGE = _SHARED.index("message")
# A Job task's entry keeps its Job's name; a folded one whose name is the one derived from
# the run, the task and the attempt (models/naming.py) says this instead, so ten thousand
# Job instances fold into one group rather than ten thousand.
DERIVED_JOB_NAME = "(named by run, task and attempt)"
# Likewise a cached entry's `cachedFrom.task` when it is the entry's own id (the same task
# of an earlier run of the same workflow: the usual case).
SAME_TASK = "(this task)"

_Key = tuple[Any, ...]


def is_big(status: RunStatus) -> bool:
    return status.entry_count() > INLINE_TASKS


def _like(task_id: str, task: TaskStatus, run_id: str | None) -> TaskStatus:
    """What `task` shares with the entries alike: no times, no outputs, a derived Job name
    and a same-task `cachedFrom` as markers, the message cut to MAX_MESSAGE."""
    update: dict[str, Any] = {
        "started_at": None,
        "finished_at": None,
        "outputs": None,
        "next_attempt_at": None,
    }
    named = task.job_name
    if (
        named is not None
        and run_id is not None
        and named == job_name(run_id, task_id, task.attempts)
    ):
        update["job_name"] = DERIVED_JOB_NAME
    if task.cached_from is not None and task.cached_from.task == task_id:
        update["cached_from"] = task.cached_from.model_copy(update={"task": SAME_TASK})
    if task.message is not None and len(task.message) > MAX_MESSAGE:
        update["message"] = task.message[: MAX_MESSAGE - 1] + "…"
    return task.model_copy(update=update)


_JOB = _SHARED.index("job_name")
_CACHED_FROM = _SHARED.index("cached_from")


def _key(task_id: str, task: TaskStatus, run_id: str | None) -> _Key:
    """What `_like` keeps of `task`, hashable (its models as JSON), and whether it backs
    off: made for every entry on every write, so without copying the entry."""
    values = [getattr(task, name) for name in _SHARED]
    named = values[_JOB]
    if (
        named is not None
        and run_id is not None
        and named == job_name(run_id, task_id, task.attempts)
    ):
        values[_JOB] = DERIVED_JOB_NAME
    source = values[_CACHED_FROM]
    if source is not None and source.task == task_id:
        values[_CACHED_FROM] = (source.run_id, SAME_TASK)
    message = values[_MESSAGE]
    if message is not None and len(message) > MAX_MESSAGE:
        values[_MESSAGE] = message[:MAX_MESSAGE]
    return (
        *(value.model_dump_json() if isinstance(value, BaseModel) else value for value in values),
        task.next_attempt_at is not None,
    )


def fold(
    tasks: Mapping[str, TaskStatus], *, run_id: str | None = None
) -> tuple[dict[str, TaskStatus], list[FoldedTasks]]:
    """(the entries kept whole, the groups of the rest). Deterministic for one map: the
    operator computes it on every status write to know which entries to remove. With the
    `run_id`, Job names derived from it are folded as DERIVED_JOB_NAME. Only an approval
    waiting for a person stays whole (a declared task: at most 2,000 of them)."""
    inline: dict[str, TaskStatus] = {}
    groups: dict[_Key, tuple[TaskStatus, list[str]]] = {}
    for task_id, task in tasks.items():
        if task.phase is TaskPhase.WAITING:
            inline[task_id] = task
            continue
        key = _key(task_id, task, run_id)
        found = groups.get(key)
        if found is None:
            groups[key] = (_like(task_id, task, run_id), [task_id])
        else:
            found[1].append(task_id)
    if len(groups) > MAX_FOLDED_GROUPS:
        groups = _without_messages(groups)
    return inline, [_group(tasks, like, members) for like, members in groups.values()]


def _without_messages(
    groups: dict[_Key, tuple[TaskStatus, list[str]]],
) -> dict[_Key, tuple[TaskStatus, list[str]]]:
    """Too many kinds of entry (each failure with its own message): the largest groups
    keep their message, the rest share MESSAGE_NOT_KEPT (the task logs keep what they
    said). Which keep it is decided by size, then key order: the same for the same map.
    Entries that differ in more than their message (attempts, say) stay apart: the group
    count is bounded by what can differ, not by the number of instances."""
    ordered = sorted(groups.items(), key=lambda item: -len(item[1][1]))
    kept = dict(ordered[: MAX_FOLDED_GROUPS // 2])
    for key, (like, members) in ordered[MAX_FOLDED_GROUPS // 2 :]:
        message = MESSAGE_NOT_KEPT if like.message else None
        plain = (*key[:_MESSAGE], message, *key[_MESSAGE + 1 :])
        found = kept.get(plain)
        if found is None:
            kept[plain] = (like.model_copy(update={"message": message}), list(members))
        else:
            found[1].extend(members)
    return kept


def _group(tasks: Mapping[str, TaskStatus], like: TaskStatus, members: list[str]) -> FoldedTasks:
    outputs = {tid: tasks[tid].outputs for tid in members if tasks[tid].outputs is not None}
    backoffs = [tasks[tid].next_attempt_at for tid in members]
    due = [moment for moment in backoffs if moment is not None]
    if due:  # a resumed run waits out the latest backoff of the group: a little long at worst
        like = like.model_copy(update={"next_attempt_at": max(due)})
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
    if entry.cached_from is not None and entry.cached_from.task == SAME_TASK:
        entry.cached_from = entry.cached_from.model_copy(update={"task": task_id})
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


def listed(task_id: str, phase: TaskPhase) -> bool:
    """Shown whole in a big run's summary: a declared task, or an instance that is under
    way or failed (what a person looks at); the rest are counted in `fanouts`."""
    return instance_of(task_id) is None or phase in LISTED_PHASES


SUMMARY_INSTANCES = 100  # instances a big run's summary lists per forEach task


def _pick(
    tasks: Mapping[str, TaskStatus],
    groups: Iterable[FoldedTasks],
    *,
    run_id: str | None,
    declared: Collection[TaskPhase] | None,
    phases: Collection[TaskPhase],
    limit: int | None,
) -> dict[str, TaskStatus]:
    """The declared tasks (in `declared` phases, or all with None), and per forEach task
    at most `limit` of its instances in `phases` (failed first), of whole `tasks` and
    folded `groups` (whose members are made only when picked)."""
    chosen: dict[str, TaskStatus] = {}
    found: dict[tuple[str, bool], dict[str, TaskStatus]] = defaultdict(dict)

    def full(parent: str, failed: bool) -> bool:
        return limit is not None and len(found[parent, failed]) >= limit

    for task_id, task in tasks.items():
        instance = instance_of(task_id)
        if instance is None:
            if declared is None or task.phase in declared:
                chosen[task_id] = task
        elif task.phase in phases and not full(instance[0], task.phase is TaskPhase.FAILED):
            found[instance[0], task.phase is TaskPhase.FAILED][task_id] = task
    for group in groups:
        phase = group.like.phase
        for part in group.tasks:
            parent, _ = part_size(part)
            if parent is None:
                if declared is None or phase in declared:
                    chosen[part] = _member(group, part, run_id)
                continue
            if phase not in phases:
                continue
            failed = phase is TaskPhase.FAILED
            for task_id in expand_ids([part]):
                if full(parent, failed):
                    break
                found[parent, failed][task_id] = _member(group, task_id, run_id)
    for parent in dict.fromkeys(parent for parent, _ in found):
        instances = [*found[parent, True].items(), *found[parent, False].items()]
        chosen.update(instances if limit is None else instances[:limit])
    return chosen


def shown_instances(tasks: Mapping[str, TaskStatus], *, limit: int) -> dict[str, TaskStatus]:
    """The declared tasks of `tasks` and per forEach task at most `limit` instances under
    way or failed, failed first: what an update of a big run carries."""
    return _pick(tasks, (), run_id=None, declared=None, phases=LISTED_PHASES, limit=limit)


def _shown(
    status: RunStatus, tasks: dict[str, TaskStatus], fanouts: dict[str, FanoutSummary] | None
) -> RunStatus:
    """`status` showing only `tasks` (and how many it leaves out) and the counts."""
    return status.model_copy(
        update={
            "tasks": tasks,
            "folded": None,
            "fanouts": fanouts,
            "omitted": status.entry_count() - len(tasks),
        }
    )


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
    tasks = _pick(
        status.tasks, groups, run_id=run_id, declared=None, phases=LISTED_PHASES, limit=limit
    )
    return _shown(status, tasks, fanouts)


def selected(
    status: RunStatus,
    phases: frozenset[TaskPhase] | None,
    *,
    limit: int | None = None,
    run_id: str | None = None,
) -> RunStatus:
    """Every entry (`phases` None), or only those in `phases`, with `fanouts`; with `limit`,
    at most that many instances per forEach task, failed first: the answer of
    `GET /workflow/{id}?tasks=all` and `?tasks=Failed,Running&limit=100`. Of a status read
    folded, only the members picked are made."""
    groups = status.folded or []
    fanouts = fanout_summaries(status.tasks, groups) or None
    if phases is None and limit is None:
        whole = unfold(status, run_id=run_id) if groups else status
        return whole.model_copy(update={"fanouts": fanouts})
    chosen = frozenset(TaskPhase) if phases is None else phases
    tasks = _pick(status.tasks, groups, run_id=run_id, declared=chosen, phases=chosen, limit=limit)
    return _shown(status, tasks, fanouts)
