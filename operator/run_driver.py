"""One WorkflowRun, driven to its end: the coroutine the run manager starts for it.

It compiles the spec with the engine, resumes from the status the resource
already has (tasks that succeeded never run again; a retry's backoff is waited
out to its `nextAttemptAt`), and writes status through a StatusWriter, which
retries failed writes from memory. How it stops matters:
- the run finishes: the final status is written, then `ttlSecondsAfterFinished`
  (if set) is waited out and the WorkflowRun deleted;
- the WorkflowRun is deleted: the run is cancelled (running tasks stopped) and
  nothing more is written;
- the operator exits: attempts are stopped (Jobs left running, to be re-attached)
  and the newest status is written once, so the next operator resumes from it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any

from stageflow.engine import (
    Attempt,
    Executor,
    PlannedTask,
    RunStatus,
    SpecError,
    TaskExecutor,
    TaskResult,
    TaskStatus,
    WorkflowRunner,
    compile_workflow,
)
from stageflow.engine.admission import RunQueue, order_score
from stageflow.engine.cache import RunCache
from stageflow.engine.retry import NotRetryableError, retried_status
from stageflow.kube import KubeError, StoredTasks, record_from_object
from stageflow.kube.bodies import RetryRequestBody
from stageflow.kube.jobs import Owner
from stageflow.kube.resource import pending_retry
from stageflow.logs import bind
from stageflow.models.records import RunRecord
from stageflow.models.status import RunPhase, parse_timestamp, utcnow
from stageflow.operator.context import OperatorContext, RunControl
from stageflow.operator.jobs import JobExecutor
from stageflow.operator.kube_events import RunKubeEvents, involved
from stageflow.operator.metrics import RunMetrics
from stageflow.operator.mirror import mirrored
from stageflow.operator.status import WRITE_RETRY, StatusWriter

logger = logging.getLogger(__name__)


async def drive(*, ctx: OperatorContext, obj: dict[str, Any], control: RunControl) -> None:
    """Run a WorkflowRun to its end (if it has not ended), then expire it (if it has a TTL).

    Every line logged meanwhile, here and in what the run starts, carries its id and
    namespace (stageflow.logs)."""
    with bind(run_id=control.name, namespace=control.namespace):
        await _drive(ctx=ctx, obj=obj, control=control)


async def _drive(*, ctx: OperatorContext, obj: dict[str, Any], control: RunControl) -> None:
    again: dict[str, Any] | None = obj
    while again is not None:  # once, unless a retry comes while it waits out its TTL
        obj = again
        retry = pending_retry(obj)
        record = record_from_object(obj, as_stored=True)
        if not record.status.phase.finished or retry is not None:
            finished = await _run(ctx, obj, record, control, retry)
            if finished is None:
                return
            record.status = finished
        control.finished = True
        if control.deleted.is_set():
            return
        again = await _expire(ctx, control, record)
        control.finished = False


class TaskLogged:
    """An executor whose attempts log with their task's id (`task` in every line)."""

    def __init__(self, inner: TaskExecutor) -> None:
        self._inner = inner
        self.name = inner.name

    def can_resume(self, task: PlannedTask, status: TaskStatus) -> bool:
        return self._inner.can_resume(task, status)

    async def execute(self, attempt: Attempt) -> TaskResult:
        with bind(task=attempt.task_id):
            return await self._inner.execute(attempt)


def _writer(
    ctx: OperatorContext, control: RunControl, obj: dict[str, Any], record: RunRecord
) -> StatusWriter:
    events = None
    if ctx.kube_events is not None:
        about = involved(control.namespace, control.name, obj.get("metadata", {}).get("uid", ""))
        events = RunKubeEvents(
            ctx.kube_events,
            about,
            initial=record.status,
            budget=ctx.settings.events_per_run,
            hold_start_seconds=ctx.settings.status_flush_seconds,
        )
    writer = StatusWriter(
        ctx.kube,
        control.namespace,
        control.name,
        interval=ctx.settings.status_flush_seconds,
        generation=lambda: control.generation,
        outage=ctx.outage,
        # Logs are kept where the mirror keeps the run: for runs with a run ID only.
        logs=ctx.mirror.store.in_namespace(control.namespace)
        if ctx.mirror is not None and mirrored(control.name)
        else None,
        events=events,
        stored=StoredTasks.of(obj),
    )
    control.writer = writer
    return writer


async def _run(
    ctx: OperatorContext,
    obj: dict[str, Any],
    record: RunRecord,
    control: RunControl,
    retry: RetryRequestBody | None = None,
) -> RunStatus | None:
    """The run's final status, or None if the operator stopped before it ended. With a
    `retry` to carry out, the run's finished status is reset first (engine/retry.py)."""
    writer = _writer(ctx, control, obj, record)
    try:
        plan = compile_workflow(record.spec, registry=ctx.tasks, **ctx.settings.limits())
    except SpecError as error:  # a spec the engine refuses (made without the API)
        status = record.status
        status.phase, status.message = RunPhase.FAILED, f"Invalid workflow: {error}"
        status.started_at = status.finished_at = utcnow()
        await writer.publish(status, frozenset(), final=True)
        return status
    if retry is not None:
        before = set(record.status.tasks)
        try:
            record.status = retried_status(
                plan,
                record.status,
                retry_id=retry["id"],
                at=parse_timestamp(retry.get("requestedAt")) or utcnow(),
                by=retry.get("requestedBy"),
                from_task=retry.get("from"),
                params=retry.get("params"),
            )
        except (NotRetryableError, SpecError) as error:
            logger.error("retry %s of %s/%s not carried out: %s", retry["id"], *control.key, error)
            writer.close()
            return record.status
        # every task entry anew, and those a retry dropped (forEach instances) removed
        entries = frozenset(before | set(record.status.tasks))
        await writer.publish(record.status, entries, final=False)
        logger.info("retry %s of %s/%s carried out", retry["id"], *control.key)
    owner = Owner(
        namespace=control.namespace,
        name=control.name,
        uid=obj.get("metadata", {}).get("uid", ""),
    )
    executors: dict[Executor, TaskExecutor] = {
        **ctx.executors,
        Executor.JOB: JobExecutor(ctx.kube, ctx.jobs, owner, ctx.settings.job_settings()),
    }
    executors = {kind: TaskLogged(executor) for kind, executor in executors.items()}

    async def preempt(run_id: str) -> None:  # cancelInProgress: as the API's cancel does
        await ctx.kube.patch_run(control.namespace, run_id, {"spec": {"cancelRequested": True}})

    queue = RunQueue(
        ctx.admission(control.namespace),
        control.name,
        order=order_score(
            record.spec.priority,
            record.created_at,
            aging_seconds=ctx.settings.priority_aging_seconds,
        ),
        preempt=preempt,
    )
    results = ctx.results.in_namespace(control.namespace) if ctx.results is not None else None
    cache = RunCache(results, run_id=control.name) if results is not None else None
    runner = WorkflowRunner(
        plan, executors=executors, sink=writer, status=record.status, queue=queue, cache=cache
    )
    control.attach(runner)
    started = time.monotonic()
    try:
        final = await runner.run()
    except asyncio.CancelledError:
        # The operator is stopping: leave the newest status for the next one to resume.
        try:
            async with asyncio.timeout(ctx.shutdown_write_seconds):
                await writer.flush()
        except TimeoutError:
            logger.warning("last status of %s/%s not written in time", *control.key)
        raise
    finally:
        writer.close()
    if control.deleted.is_set():
        logger.info("WorkflowRun %s/%s deleted: its run was cancelled", *control.key)
        return None
    RunMetrics.run_finished(final)
    logger.info(
        "WorkflowRun %s/%s %s: %s tasks in %.2fs, %d status patches",
        *control.key,
        final.phase.value,
        final.progress,
        time.monotonic() - started,
        writer.patches,
    )
    return final


async def _expire(
    ctx: OperatorContext, control: RunControl, record: RunRecord
) -> dict[str, Any] | None:
    """Delete a finished run `ttlSecondsAfterFinished` after it finished (if set). A retry
    asked for meanwhile ends the wait: the WorkflowRun that asked, to run again."""
    ttl = record.spec.ttl_seconds_after_finished
    if ttl is None:
        return None
    finished_at = record.status.finished_at or utcnow()
    remaining = (finished_at + timedelta(seconds=ttl) - utcnow()).total_seconds()
    if remaining > 0:
        deleted = asyncio.ensure_future(control.deleted.wait())
        retried = asyncio.ensure_future(control.again.wait())
        try:
            done, _ = await asyncio.wait(
                {deleted, retried}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            deleted.cancel()
            retried.cancel()
        if retried in done:
            control.again.clear()
            return control.retried
        if deleted in done:
            return None  # deleted by someone else meanwhile
    logger.info("WorkflowRun %s/%s reached ttlSecondsAfterFinished: deleting it", *control.key)
    failures = 0
    while not control.deleted.is_set():
        try:
            await ctx.kube.delete_run(control.namespace, control.name)
            return None
        except KubeError as error:
            failures += 1
            if failures == 1:
                logger.warning("deleting %s/%s failed (%s); retrying", *control.key, error)
            await asyncio.sleep(WRITE_RETRY.delay(failures))
    return None
