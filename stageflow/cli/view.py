"""How a run looks in a terminal: its stages (or DAG levels), each task with its phase,
attempts, duration and message.

One layout serves `get` (once), the live view of `watch` and `submit --watch` on a
terminal (redrawn in place), and the plain lines they print when the output is a
file or a pipe. Every phase is written out in words; colour only repeats it.
"""

from __future__ import annotations

import re
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
from stageflow.models.records import RunOrigin
from stageflow.models.status import PHASE_MARKS, utcnow

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
_INSTANCE = re.compile(r"^(?P<base>.+)\[(?P<index>\d+)\]$")


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
        for source in (task.params, task.when, task.until, task.for_each):
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
        match = _INSTANCE.match(task_id)
        if match and match["base"] in placed:
            instances.setdefault(match["base"], []).append((int(match["index"]), task_id))
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


def run_view(record: RunRecord, *, now: datetime | None = None) -> RenderableType:
    """The whole run: a header line, then a table of its tasks by stage or level."""
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
    for number, section in enumerate(sections(record)):
        if number:
            table.add_section()
        for row, task_id in enumerate(section.task_ids):
            task = status.tasks.get(task_id)
            if task is None:
                continue
            table.add_row(
                section.title if row == 0 else "",
                task_id,
                phase_text(task.phase),
                str(task.attempts),
                duration(task.started_at, task.finished_at, now),
                task.message or "",
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
    """Plain lines for what changed: one per task that moved, one when the run did."""
    clock = (now or utcnow()).strftime("%H:%M:%S")
    lines = []
    old_tasks = before.status.tasks if before is not None else {}
    for task_id, task in after.status.tasks.items():
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
    if before is None or before.status.phase != after.status.phase:
        lines.append(f"{clock}  run {after.status.phase.value} ({after.status.progress})")
    return lines


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
