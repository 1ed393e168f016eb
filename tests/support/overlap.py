"""When a run's tasks ran, and whether they ran at once or one after another."""

from __future__ import annotations

import itertools
from datetime import datetime

from stageflow.engine import RunStatus

Interval = tuple[datetime, datetime]


def intervals(status: RunStatus, *task_ids: str) -> list[Interval]:
    """(startedAt, finishedAt) of each task, for overlap assertions."""
    spans: list[Interval] = []
    for task_id in task_ids:
        task = status.tasks[task_id]
        assert task.started_at is not None, task_id
        assert task.finished_at is not None, task_id
        spans.append((task.started_at, task.finished_at))
    return spans


def all_overlap(spans: list[Interval]) -> bool:
    """True when some moment lies inside every span: they all ran at once."""
    return max(start for start, _ in spans) < min(end for _, end in spans)


def never_overlap(spans: list[Interval]) -> bool:
    """True when each span starts after the previous one ended."""
    return all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))
