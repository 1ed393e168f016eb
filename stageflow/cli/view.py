"""How a run looks in a terminal: its stages (or DAG levels), each task with its phase,
attempts, duration and message.

One layout serves `get` (once), the live view of `watch` and `submit --watch` on a
terminal (redrawn in place), and the plain lines they print when the output is a
file or a pipe. Every phase is written out in words; colour only repeats it.

A forEach task is one line that counts its instances by phase, followed by its failed
and running instances (at most `SHOWN_INSTANCES` of each, then `… and N more`): a run of
ten thousand instances is a screenful, not ten thousand rows. The counts are the run's
`fanouts` when it has them (the API's records and updates do), else its entries counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from stageflow.client import RunRecord, RunSummary, TaskPhase
from stageflow.engine import RunPhase, TaskSpec
from stageflow.engine.templates import TemplateError, references
from stageflow.models.folding import fanout_summaries
from stageflow.models.records import RunOrigin
from stageflow.models.status import PHASE_MARKS, FanoutSummary, TaskStatus, utcnow
from stageflow.models.task_ids import instance_of

STYLES = {
    "Pending": "dim",
    "Running": "bold cyan",
    "Succeeded": "green",
    "Failed": "bold red",
    "Skipped": "magenta",
    "Cancelled": "yellow",
    "Waiting": "bold magenta",
    "Queued": "dim cyan",
}
MARKS = PHASE_MARKS
SHOWN_INSTANCES = 5  # failed, and running, instances shown under a forEach task's line
LISTED_PHASES = (TaskPhase.FAILED, TaskPhase.RUNNING)
# A forEach task's counts: these phases always, the others when an instance is in them.
COUNTED = ("Succeeded", "Running", "Failed")
COUNTED_WHEN_ANY = ("Waiting", "Skipped", "Cancelled", "Pending")


@dataclass(frozen=True)
class Section:
    """A stage, or a DAG level (tasks whose longest chain of dependencies is as long)."""

    title: str
    task_ids: list[str]


def sections(record: RunRecord) -> list[Section]:
    """The run's tasks in the order they run; forEach instances follow their task."""
    spec = record.spec
    if spec.workflow is not None:
        found = [
            Section(f"stage {number} · {stage.type}", [_id(entry) for entry in stage.tasks])
            for number, stage in enumerate(spec.workflow, 1)
        ]
    else:
        found = [
            Section(f"level {number}", ids)
            for number, ids in enumerate(dag_levels(spec.dag or []), 1)
        ]
    if spec.finally_:
        found.append(Section("finally", [_id(entry) for entry in spec.finally_]))
    return _with_instances(found, list(record.status.tasks))


def dag_levels(tasks: Sequence[TaskSpec]) -> list[list[str]]:
    """Tasks grouped by the length of their longest chain of dependencies, counting both
    `dependsOn` and the tasks their `{{ }}` references read."""
    upstream = {_id(task): _dependencies(task) for task in tasks}
    depth: dict[str, int] = {}

    def level(task_id: str, seen: frozenset[str]) -> int:
        if task_id not in depth:
            parents = [p for p in upstream.get(task_id, ()) if p in upstream and p not in seen]
            depth[task_id] = 1 + max((level(p, seen | {task_id}) for p in parents), default=-1)
        return depth[task_id]

    levels: list[list[str]] = []
    for task_id in upstream:
        number = level(task_id, frozenset())
        levels.extend([] for _ in range(number + 1 - len(levels)))
        levels[number].append(task_id)
    return levels


def _dependencies(task: TaskSpec) -> list[str]:
    found = list(task.depends_on or ())
    try:
        for_each = task.for_each if isinstance(task.for_each, str | list) else None
        for source in (task.params, task.when, task.until, for_each):
            found += [ref.task for ref in references(source) if ref.task is not None]
    except TemplateError:
        pass  # the API validated the spec; a view need not say more
    return found


def _id(entry: str | TaskSpec) -> str:
    return entry if isinstance(entry, str) else entry.name or entry.task or "?"


def _with_instances(found: list[Section], status_ids: Iterable[str]) -> list[Section]:
    placed = {task_id for section in found for task_id in section.task_ids}
    instances: dict[str, list[tuple[int, str]]] = {}
    strays: list[str] = []
    for task_id in status_ids:
        if task_id in placed:
            continue
        instance = instance_of(task_id)
        if instance is not None and instance[0] in placed:
            instances.setdefault(instance[0], []).append((instance[1], task_id))
        else:
            strays.append(task_id)
    result = [
        Section(
            section.title,
            [
                shown
                for task_id in section.task_ids
                for shown in [task_id, *(i for _, i in sorted(instances.get(task_id, [])))]
            ],
        )
        for section in found
    ]
    return [*result, Section("other", strays)] if strays else result


def phase_text(phase: str) -> Text:
    return Text(f"{MARKS.get(phase, '?')} {phase}", style=STYLES.get(phase, ""))


def duration(start: datetime | None, end: datetime | None, now: datetime | None = None) -> str:
    """`1.52s`, `3m04s`, `2h05m`; empty before it started; to `now` while it runs."""
    if start is None:
        return ""
    seconds = max(0.0, ((end or now or utcnow()) - start).total_seconds())
    if seconds < 60:
        return f"{seconds:.2f}s" if seconds < 10 else f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def age(moment: datetime, now: datetime | None = None) -> str:
    """kubectl's AGE: `12s`, `5m`, `3h`, `2d`."""
    seconds = int(max(0.0, ((now or utcnow()) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def fanouts_of(record: RunRecord) -> dict[str, FanoutSummary]:
    """Each forEach task's instances counted by phase: the record's `fanouts`, or counted
    from its `NAME[i]` entries when it has none."""
    if record.status.fanouts is not None:
        return record.status.fanouts
    return fanout_summaries(record.status.tasks)


def fanout_counts(fanout: FanoutSummary) -> Text:
    """`10,000 instances: ✓ 9,990 Succeeded  ▶ 10 Running  ✗ 0 Failed`, each in its colour."""
    phases = fanout.phases
    shown = [*COUNTED, *(phase for phase in COUNTED_WHEN_ANY if phases.get(phase))]
    text = Text(f"{fanout.total:,} instances:")
    for phase in shown:
        text.append(" ")
        text.append(f"{MARKS[phase]} {phases.get(phase, 0):,} {phase}", style=STYLES[phase])
    return text


def listed_instances(
    record: RunRecord, task_id: str, fanout: FanoutSummary
) -> list[tuple[str, TaskStatus] | str]:
    """Under a forEach task's line: its failed instances, then its running ones, at most
    SHOWN_INSTANCES of each by index, each group followed by `… and N more failed` when
    the counts say there are more than shown."""
    found: dict[TaskPhase, list[tuple[int, str, TaskStatus]]] = {p: [] for p in LISTED_PHASES}
    for instance_id, task in record.status.tasks.items():
        instance = instance_of(instance_id)
        if instance is not None and instance[0] == task_id and task.phase in found:
            found[task.phase].append((instance[1], instance_id, task))
    rows: list[tuple[str, TaskStatus] | str] = []
    for phase in LISTED_PHASES:
        group = sorted(found[phase], key=lambda entry: entry[0])
        rows += [(instance_id, task) for _, instance_id, task in group[:SHOWN_INSTANCES]]
        more = max(len(group), fanout.phases.get(phase.value, 0)) - min(len(group), SHOWN_INSTANCES)
        if more > 0:
            rows.append(f"… and {more:,} more {phase.value.lower()}")
    return rows


def run_view(record: RunRecord, *, now: datetime | None = None) -> RenderableType:
    """The whole run: a header line, then a table of its tasks by stage or level, each
    forEach task with its counts and its failed and running instances."""
    status = record.status
    # Updates carry no run timestamps: until the final read, time it from its creation.
    started = status.started_at or (None if status.phase is RunPhase.PENDING else record.created_at)
    finished = status.finished_at if status.phase.finished else None
    header = Text.assemble(
        ("Run ", "bold"),
        (record.run_id, "bold"),
        f"  {record.name}" if record.name else "",
        "  ",
        phase_text(status.phase),
        f"  {status.progress} done",
        f"  {duration(started, finished, now)}" if started else "",
    )
    table = Table(box=box.SIMPLE_HEAD, expand=False, pad_edge=False)
    for column in ("STAGE", "TASK", "PHASE", "ATTEMPTS", "DURATION"):
        table.add_column(column, no_wrap=True)
    table.add_column("MESSAGE", overflow="fold")
    fanouts = fanouts_of(record)
    for number, section in enumerate(sections(record)):
        if number:
            table.add_section()
        title = section.title
        for task_id in section.task_ids:
            task = status.tasks.get(task_id)
            instance = instance_of(task_id)
            if task is None or (instance is not None and instance[0] in fanouts):
                continue  # an instance: counted on its task's line
            fanout = fanouts.get(task_id)
            message = Text(task.message or "")
            if fanout is not None:
                message = Text.assemble(
                    message, " · " if task.message else "", fanout_counts(fanout)
                )
            table.add_row(
                title,
                task_id,
                phase_text(task.phase),
                str(task.attempts),
                duration(task.started_at, task.finished_at, now),
                message,
            )
            title = ""
            for listed in listed_instances(record, task_id, fanout) if fanout else []:
                if isinstance(listed, str):
                    table.add_row("", Text(f"  {listed}", style="dim"), "", "", "", "")
                    continue
                instance_id, entry = listed
                table.add_row(
                    "",
                    f"  {instance_id}",
                    phase_text(entry.phase),
                    str(entry.attempts),
                    duration(entry.started_at, entry.finished_at, now),
                    entry.message or "",
                )
    parts: list[RenderableType] = [header]
    if record.origin is not None and (origin := origin_text(record.origin)):
        parts.append(Text(origin, style="dim"))
    parts.append(table)
    if status.queue is not None:
        keys = ", ".join(status.queue.keys)
        parts.append(Text(f"queued for {keys}: {status.queue.position} in line", style="dim cyan"))
    if status.message:
        parts.append(Text(status.message, style=STYLES.get(status.phase, "")))
    return Group(*parts)


def origin_text(origin: RunOrigin) -> str:
    """Where a run came from: `from template nightly@3, schedule hourly at
    2026-11-22T02:00:00Z (backfill)`; empty when it says nothing."""
    found = []
    if origin.template is not None:
        revision = f"@{origin.template_revision}" if origin.template_revision is not None else ""
        found.append(f"template {origin.template}{revision}")
    if origin.schedule is not None:
        slot = ""
        if origin.scheduled_time is not None:
            slot = " at " + origin.scheduled_time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        found.append(
            f"schedule {origin.schedule}{slot}" + (" (backfill)" if origin.backfill else "")
        )
    return "from " + ", ".join(found) if found else ""


class LiveRun:
    """What the live view redraws: the latest run, its running durations ticking."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record

    def __rich__(self) -> RenderableType:
        return run_view(self.record)


def transitions(
    before: RunRecord | None, after: RunRecord, *, now: datetime | None = None
) -> list[str]:
    """Plain lines for what changed: one per declared task that moved, one per forEach
    instance that failed, one per forEach task when its instances first show and each time
    another tenth of them has finished (its counts), and one when the run moved."""
    clock = (now or utcnow()).strftime("%H:%M:%S")
    lines = []
    old_tasks = before.status.tasks if before is not None else {}
    fanouts = fanouts_of(after)
    old_fanouts = fanouts_of(before) if before is not None else {}
    for task_id, task in after.status.tasks.items():
        instance = instance_of(task_id)
        if instance is not None and instance[0] in fanouts and task.phase is not TaskPhase.FAILED:
            continue  # counted on its task's line
        old = old_tasks.get(task_id)
        if old is not None and (old.phase, old.attempts) == (task.phase, task.attempts):
            continue
        if old is None and task.phase is TaskPhase.PENDING:
            continue
        line = f"{clock}  {task_id:<20} {task.phase.value:<10}"
        if task.attempts:
            line += f" attempt {task.attempts}"
        if task.phase.finished and task.started_at:
            line += f"  {duration(task.started_at, task.finished_at)}"
        if task.message:
            line += f"  {task.message}"
        lines.append(line.rstrip())
    for task_id, fanout in fanouts.items():
        if _tenths(fanout) != _tenths(old_fanouts.get(task_id)):
            lines.append(f"{clock}  {task_id:<20} {fanout_counts(fanout).plain}")
    if before is None or before.status.phase != after.status.phase:
        lines.append(f"{clock}  run {after.status.phase.value} ({after.status.progress})")
    return lines


def _tenths(fanout: FanoutSummary | None) -> int:
    """How many tenths of a forEach task's instances have finished (-1: none counted yet)."""
    if fanout is None or not fanout.total:
        return -1
    under_way = sum(fanout.phases.get(phase, 0) for phase in ("Pending", "Running", "Waiting"))
    return (fanout.total - under_way) * 10 // fanout.total


def runs_table(runs: Iterable[RunSummary], *, now: datetime | None = None) -> Table:
    """`stageflow list`: kubectl's look, one run a row."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("ID", "NAME", "PHASE", "PROGRESS", "AGE"):
        table.add_column(column, no_wrap=True)
    for run in runs:
        table.add_row(
            run.run_id,
            run.name or "",
            phase_text(run.phase),
            run.progress,
            age(run.created_at, now),
        )
    return table


EXIT_CODES = {RunPhase.SUCCEEDED: 0, RunPhase.FAILED: 1, RunPhase.CANCELLED: 3}
