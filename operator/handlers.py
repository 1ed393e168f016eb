"""The kopf handlers, in a registry of their own (no global state, one per operator).

Only `kopf.on.event` handlers watch WorkflowRuns and Jobs: they store nothing on
the objects (no finalizer, no progress or diff-base annotation; see
operator/run_manager.py for why nothing needs them) and hand each event on:
- to the run manager, which starts, cancels and stops runs (operator/run_manager.py);
- to the Redis mirror, so it follows what is observed, whoever wrote it;
- Job events to the attempt waiting for that Job.
Start-up resyncs the mirror; clean-up stops every run
(its status left for the next operator) and closes clients. The liveness probe
fails when a watch is stuck (operator/watchcheck.py), not when it is idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import kopf

from stageflow.engine.scheduler import Scheduler
from stageflow.kube import GROUP, PLURAL, VERSION, KubeUnavailableError, ObjectKey
from stageflow.kube.resource import RUN_LABEL
from stageflow.operator.context import OperatorContext
from stageflow.operator.schedules import KubeScheduleHost
from stageflow.operator.watchcheck import WatchCheck

logger = logging.getLogger(__name__)

LoginFn = Any  # kopf's activity handler: (**kwargs) -> kopf.ConnectionInfo | None


def build_registry(*, login: LoginFn) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(_startup)
    kopf.on.cleanup(registry=registry)(_cleanup)
    kopf.on.probe(id="watches", registry=registry)(_watches_keep_up)
    kopf.on.event(GROUP, VERSION, PLURAL, registry=registry)(_observe)
    kopf.on.event("batch", "v1", "jobs", labels={RUN_LABEL: kopf.PRESENT}, registry=registry)(
        _observe_job
    )
    return registry


def _context(memo: Any) -> OperatorContext:
    assert isinstance(memo, OperatorContext)
    return memo


async def _startup(memo: Any, **_: Any) -> None:
    ctx = _context(memo)
    if ctx.kube_events is not None:
        ctx.kube_events.start()
    if ctx.mirror is not None:
        ctx.mirror.start()
        await ctx.mirror.resync()
    ctx.watch_checking = [
        asyncio.create_task(check.run_forever(), name=f"stageflow {check.what} watch check")
        for check in ctx.watch_checks
    ]
    if ctx.settings.schedules:  # kopf runs on the leader only: so does the scheduler
        poll = ctx.settings.schedule_poll_seconds
        scheduler = Scheduler(
            KubeScheduleHost(ctx),
            poll_seconds=poll,
            idle_seconds=poll,
            transient=(KubeUnavailableError,),
        )
        ctx.scheduling = asyncio.create_task(scheduler.run_forever(), name="stageflow scheduler")
    # leading from here, just before kopf lists the WorkflowRuns (after the mirror's resync):
    # the admission grace counts from now
    ctx.started = time.monotonic()


async def _cleanup(memo: Any, **_: Any) -> None:
    ctx = _context(memo)
    background = [*ctx.watch_checking, *([ctx.scheduling] if ctx.scheduling else [])]
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    if ctx.runs is not None:
        await ctx.runs.stop()  # their last status is written
    if ctx.elector is not None:
        # Hand over now, not after kopf has drained its idle workers (seconds later).
        await ctx.elector.release()
    if ctx.kube_events is not None:
        await ctx.kube_events.stop()
    if ctx.mirror is not None:
        try:
            async with asyncio.timeout(5):  # bounded, as every step of a shutdown is
                await ctx.mirror.stop()
        except TimeoutError:
            logger.error("the Redis mirror did not close within 5 s; leaving it")
    await ctx.kube.aclose()  # serve() closes it too, for a standby that never ran kopf


async def _watches_keep_up(memo: Any, **_: Any) -> str:
    """Part of /healthz: fails (500) when a watch is stuck, not when it is merely idle."""
    for check in _context(memo).watch_checks:
        if check.stuck is not None:
            raise kopf.PermanentError(check.stuck)
    return "keeping up"


def _seen(check: WatchCheck | None, event: kopf.RawEvent) -> None:
    if check is not None:
        metadata = event["object"].get("metadata") or {}
        check.seen(
            ObjectKey.of(metadata),
            metadata.get("resourceVersion"),
            deleted=event.get("type") == "DELETED",
        )


async def _observe(*, event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    ctx = _context(memo)
    _seen(ctx.run_watch, event)
    obj: dict[str, Any] = dict(event["object"])  # the raw JSON: no view to convert
    deleted = event.get("type") == "DELETED" or bool(
        obj.get("metadata", {}).get("deletionTimestamp")
    )
    if ctx.runs is not None:
        ctx.runs.observe(obj, deleted=deleted)
    if ctx.mirror is not None:
        if deleted:
            metadata = obj["metadata"]
            ctx.mirror.forget(
                metadata["name"],
                namespace=metadata["namespace"],
                version=metadata.get("resourceVersion"),
            )
        else:
            ctx.mirror.observe(obj)


async def _observe_job(*, event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """Job transitions, handed to the attempt waiting for that Job (if any)."""
    ctx = _context(memo)
    _seen(ctx.job_watch, event)
    job: dict[str, Any] = dict(event["object"])
    ctx.jobs.observe(job, deleted=event.get("type") == "DELETED")
