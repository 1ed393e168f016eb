"""Following task logs while they grow, the same way for every backend.

A backend keeps one text per task: the latest attempt's output, bounded, which an
in-process task republishes while it runs and a Job task reads from its pod. A
follower reads that text every POLL_SECONDS and sends only what is new since its
last read, until the task has finished and its last text was read: polling a
bounded text works across API replicas (any of them may serve the follower) and
needs no second channel for logs beside the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from stageflow.api.backends import Backend
from stageflow.api.errors import NoLogsError, RunNotFoundError
from stageflow.engine import TaskPhase
from stageflow.models.folding import INLINE_TASKS, listed

POLL_SECONDS = 0.5
OVERLAP_CHARS = 256  # how much of the last text must reappear to tell where the new part starts


class LogDiff:
    """What is new in a task's log text since the text seen before.

    The text is usually the last one plus more. When its head was dropped (the bound)
    the new part starts after the last OVERLAP_CHARS seen; when it is another text (a
    new attempt begins `--- attempt N ---`), all of it is new."""

    def __init__(self) -> None:
        self._seen = ""

    def next(self, text: str) -> str:
        seen, self._seen = self._seen, text
        if text.startswith(seen):
            return text[len(seen) :]
        tail = seen[-OVERLAP_CHARS:]
        at = text.rfind(tail)
        return text[at + len(tail) :] if tail and at >= 0 else text


class RunLogs:
    """The new log text of each task of one run, swept in one pass (the WebSocket's logs,
    and `logs?follow=true` for one task)."""

    def __init__(self, backend: Backend, run_id: str, *, only: str | None = None) -> None:
        self._backend = backend
        self._run_id = run_id
        self._only = only
        self._diffs: dict[str, LogDiff] = {}
        self._done: set[str] = set()
        self.finished = False  # every followed task finished and its last text was read

    async def sweep(self) -> list[tuple[str, str]]:
        """(task, new text) for each task with new output; a deleted run ends the sweep."""
        try:
            phases = await self._backend.task_phases(self._run_id)
        except RunNotFoundError:
            self.finished = True
            return []
        if self._only is not None:
            phases = {self._only: phases.get(self._only, TaskPhase.SKIPPED)}
        big = len(phases) > INLINE_TASKS
        wanted: list[str] = []
        for task_id, phase in phases.items():
            if task_id in self._done or phase == TaskPhase.PENDING:
                continue
            if TaskPhase(phase).finished:  # read once more after it ended: its final text
                self._done.add(task_id)
            # a big run's instances: only those under way or failed (as its summary lists)
            if not big or listed(task_id, TaskPhase(phase)):
                wanted.append(task_id)
        if not wanted:
            texts: dict[str, str] = {}
        elif self._only is not None:  # one task: its Job's log or its stored one
            try:
                texts = {self._only: await self._backend.task_log(self._run_id, self._only)}
            except (NoLogsError, RunNotFoundError):
                texts = {}
        else:
            try:
                texts = await self._backend.task_logs(self._run_id, wanted)
            except RunNotFoundError:
                texts = {}
        chunks: list[tuple[str, str]] = []
        for task_id, text in texts.items():
            new = self._diffs.setdefault(task_id, LogDiff()).next(text)
            if new:
                chunks.append((task_id, new))
        self.finished = self._done.issuperset(phases)
        return chunks


async def follow_task_log(
    backend: Backend, run_id: str, task_id: str, *, interval: float = POLL_SECONDS
) -> AsyncIterator[str]:
    """A task's log as it grows, until the task has finished (or the run is deleted)."""
    logs = RunLogs(backend, run_id, only=task_id)
    while True:
        for _, text in await logs.sweep():
            yield text
        if logs.finished:
            return
        await asyncio.sleep(interval)
