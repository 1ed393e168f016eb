"""One WorkflowRun, reconciled: the long-lived handler that runs it to its end.

kopf starts one of these per WorkflowRun (and again for every run after an
operator restart). It compiles the spec with the engine, resumes from the status
the resource already has (tasks that succeeded never run again), and writes
status through a coalescing StatusPatcher. How it stops matters:
- the run finishes: the final status is written, then `ttlSecondsAfterFinished`
  (if set) is waited out and the WorkflowRun deleted;
- the WorkflowRun is deleted: the run is cancelled (running tasks stopped);
- the operator exits: attempts are stopped but the status is left as it is,
  so the next operator resumes the run.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import kopf

from stageflow.engine import (
    CoalescingSink,
    Executor,
    RunStatus,
    SpecError,
    WorkflowRunner,
    compile_workflow,
)
from stageflow.engine.status import RunPhase, format_timestamp, utcnow
from stageflow.kube import record_from_object
from stageflow.kube.jobs import Owner
from stageflow.operator.context import OperatorContext
from stageflow.operator.jobs import JobExecutor
from stageflow.operator.status import StatusPatcher
from stageflow.store import RunRecord

logger = logging.getLogger(__name__)


def plain(value: Any) -> Any:
    """A kopf body (mapping views all the way down) as plain dicts and lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


async def run_workflow(
    *,
    ctx: OperatorContext,
    namespace: str,
    name: str,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
) -> None:
    record = record_from_object(plain(body))
    if not record.status.phase.finished:
        try:
            plan = compile_workflow(record.spec, registry=ctx.tasks, **ctx.settings.limits())
        except SpecError as error:
            await _reject(ctx, namespace, name, record.status, f"Invalid workflow: {error}")
            return
        patcher = StatusPatcher(
            ctx.kube,
            namespace,
            name,
            generation=lambda: body.get("metadata", {}).get("generation"),
            logs=ctx.mirror.store.in_namespace(namespace) if ctx.mirror is not None else None,
        )
        owner = Owner(namespace=namespace, name=name, uid=body.get("metadata", {}).get("uid", ""))
        executors = {
            **ctx.executors,
            Executor.JOB: JobExecutor(ctx.kube, ctx.jobs, owner, ctx.settings.job_settings()),
        }
        runner = WorkflowRunner(
            plan,
            executors=executors,
            sink=CoalescingSink(patcher, interval=ctx.settings.status_flush_seconds),
            status=record.status,
        )
        started = time.monotonic()
        if not await _supervise(ctx, (namespace, name), runner, record, stopped):
            return
        logger.info(
            "WorkflowRun %s/%s %s: %s tasks in %.2fs, %d status patches",
            namespace,
            name,
            record.status.phase.value,
            record.status.progress,
            time.monotonic() - started,
            patcher.patches,
        )
    await _expire(ctx, namespace, name, record.spec.ttl_seconds_after_finished, stopped)


async def _supervise(
    ctx: OperatorContext,
    key: tuple[str, str],
    runner: WorkflowRunner,
    record: RunRecord,
    stopped: kopf.DaemonStopped,
) -> bool:
    """Run until the run ends (True) or kopf stops us (False)."""
    ctx.runners[key] = runner
    if record.cancel_requested:
        runner.cancel()
    running = asyncio.create_task(runner.run(), name=f"run {key[1]}")
    stopping = asyncio.ensure_future(stopped.wait())
    try:
        await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if running.done():
            final = running.result()  # a failed final write raises: kopf retries the daemon
            record.status = final
            return True
        reason = stopped.reason or kopf.DaemonStoppingReason.OPERATOR_EXITING
        if kopf.DaemonStoppingReason.RESOURCE_DELETED in reason:
            logger.info("WorkflowRun %s/%s deleted: cancelling its run", *key)
            runner.cancel("Cancelled: the WorkflowRun was deleted")
        else:
            logger.info("stopping run %s/%s (%s); it resumes on restart", *key, reason)
            running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        return False
    finally:
        if not running.done():  # we were cancelled ourselves
            running.cancel()
        stopping.cancel()
        ctx.runners.pop(key, None)


async def _reject(
    ctx: OperatorContext, namespace: str, name: str, status: RunStatus, message: str
) -> None:
    """A spec the engine refuses (made without the API): fail the run and say why."""
    now = format_timestamp(utcnow())
    patch = {
        "status": {
            "phase": RunPhase.FAILED.value,
            "message": message,
            "startedAt": now,
            "finishedAt": now,
            "progress": status.progress,
        }
    }
    await ctx.kube.patch_run_status(namespace, name, patch)


async def _expire(
    ctx: OperatorContext, namespace: str, name: str, ttl: int | None, stopped: kopf.DaemonStopped
) -> None:
    """Delete a finished run `ttlSecondsAfterFinished` after it finished (if set)."""
    if ttl is None:
        return
    current = await ctx.kube.get_run(namespace, name)
    if current is None:
        return
    finished_at = record_from_object(current).status.finished_at or utcnow()
    remaining = (finished_at + timedelta(seconds=ttl) - utcnow()).total_seconds()
    if remaining > 0:
        await stopped.wait(timeout=remaining)
        if stopped.is_set():
            return
    logger.info("WorkflowRun %s/%s reached ttlSecondsAfterFinished: deleting it", namespace, name)
    await ctx.kube.delete_run(namespace, name)
