"""The Job executor: a task attempt as a Kubernetes Job, watched to its end.

One Job per attempt, with a deterministic name (kube/jobs.py), so an attempt is
created at most once: after an operator restart the executor finds the Job of
the attempt under way and re-attaches; if the Job was never created, it is now.
Completion comes from kopf's watch on Jobs (JobWatcher), with a periodic re-read
in case an event was missed. Cancelling an attempt deletes its Job (and pods) —
except when the operator is shutting down: then the Job keeps running, to be
re-attached by the next operator.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from stageflow.engine import Attempt, PlannedTask, TaskResult, TaskStatus
from stageflow.engine.inprocess import interpret
from stageflow.kube import KubeClient, KubeConflictError, ObjectKey
from stageflow.kube.jobs import (
    JobSettings,
    Owner,
    deadline_exceeded,
    failure_of,
    job_name,
    manifest,
    outcome,
    outputs_of,
)

logger = logging.getLogger(__name__)

RESYNC_SECONDS = 30.0


@dataclass
class _Watch:
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    latest: dict[str, Any] | None = None
    gone: bool = False


class JobWatcher:
    """Job events from kopf's watch stream, handed to the attempts waiting for them."""

    def __init__(self) -> None:
        self._watches: dict[ObjectKey, _Watch] = {}

    def observe(self, job: dict[str, Any], *, deleted: bool = False) -> None:
        metadata = job.get("metadata", {})
        watch = self._watches.get(ObjectKey.of(metadata))
        if watch is not None:
            watch.latest, watch.gone = job, deleted
            watch.changed.set()

    @contextlib.contextmanager
    def watching(self, namespace: str, name: str) -> Iterator[_Watch]:
        watch = _Watch()
        self._watches[ObjectKey(namespace, name)] = watch
        try:
            yield watch
        finally:
            self._watches.pop(ObjectKey(namespace, name), None)


class JobExecutor:
    """Runs the attempts of one WorkflowRun's `executor: job` tasks."""

    name = "job"

    def __init__(
        self, kube: KubeClient, watcher: JobWatcher, owner: Owner, settings: JobSettings
    ) -> None:
        self._kube = kube
        self._watcher = watcher
        self._owner = owner
        self._settings = settings

    def can_resume(self, task: PlannedTask, status: TaskStatus) -> bool:
        return True  # the attempt's Job has a known name: re-attach, or create it now

    async def execute(self, attempt: Attempt) -> TaskResult:
        namespace = self._owner.namespace
        name = job_name(self._owner.name, attempt.task_id, attempt.number)
        attempt.status.job_name = name
        attempt.changed()
        with self._watcher.watching(namespace, name) as watch:
            try:
                return await self._run(attempt, name, watch)
            except asyncio.CancelledError:
                if not attempt.detach():
                    await asyncio.shield(self._kube.delete_job(namespace, name))
                raise

    async def _ended(self, job: Mapping[str, Any], result: TaskResult, name: str) -> TaskResult:
        """The Job's result with what its pod says: outputs when it succeeded, the
        container's own reason when it failed (a deadline speaks for itself)."""
        if deadline_exceeded(job):
            return result
        pod = await self._kube.job_pod(self._owner.namespace, name)
        if pod is None:
            return result
        if not result.ok:
            reason = failure_of(pod)
            return TaskResult(ok=False, message=reason) if reason else result
        outputs = outputs_of(pod)
        if outputs is None:
            return result
        if not isinstance(outputs, dict):
            return TaskResult(ok=False, message="the Job's outputs are not a JSON object")
        return interpret(outputs)  # the same JSON and size checks as in-process outputs

    async def _run(self, attempt: Attempt, name: str, watch: _Watch) -> TaskResult:
        namespace = self._owner.namespace
        job: Mapping[str, Any] | None = (
            await self._kube.get_job(namespace, name) if attempt.resumed else None
        )
        if job is None:
            body = manifest(
                owner=self._owner,
                task_id=attempt.task_id,
                spec=attempt.task.spec.model_copy(update={"params": attempt.params}),
                attempt=attempt.number,
                settings=self._settings,
            )
            try:
                job = await self._kube.create_job(namespace, body)
                logger.info("created Job %s/%s", namespace, name)
            except KubeConflictError:  # made before a restart: adopt it
                job = await self._kube.get_job(namespace, name)
        while True:
            if job is None or watch.gone:
                return TaskResult(ok=False, message=f"Job {name} was deleted before it finished")
            result = outcome(job)
            if result is not None:
                return await self._ended(job, result, name)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESYNC_SECONDS):
                    await watch.changed.wait()
            if watch.changed.is_set():
                watch.changed.clear()
                job = watch.latest
            else:  # no event for a while: read it, in case one was missed
                job = await self._kube.get_job(namespace, name)
