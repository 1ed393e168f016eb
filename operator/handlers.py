"""The kopf handlers, in a registry of their own (no global state, one per operator).

Only `kopf.on.event` handlers watch WorkflowRuns and Jobs: they store nothing on
the objects (no finalizer, no progress or diff-base annotation; see
operator/runs.py for why nothing needs them) and hand each event on:
- to the run manager, which starts, cancels and stops runs (operator/runs.py);
- to the Redis mirror, so it follows what is observed, whoever wrote it;
- Job events to the attempt waiting for that Job.
Start-up resyncs the mirror; clean-up stops every run
(its status left for the next operator) and closes clients.
"""

from __future__ import annotations

from typing import Any

import kopf

from stageflow.kube import GROUP, PLURAL, VERSION
from stageflow.kube.resource import RUN_LABEL
from stageflow.operator.context import OperatorContext

LoginFn = Any  # kopf's activity handler: (**kwargs) -> kopf.ConnectionInfo | None


def build_registry(*, login: LoginFn) -> kopf.OperatorRegistry:
    registry = kopf.OperatorRegistry()
    kopf.on.login(registry=registry)(login)
    kopf.on.startup(registry=registry)(_startup)
    kopf.on.cleanup(registry=registry)(_cleanup)
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
    if ctx.events is not None:
        ctx.events.start()
    if ctx.mirror is not None:
        ctx.mirror.start()
        await ctx.mirror.resync()


async def _cleanup(memo: Any, **_: Any) -> None:
    ctx = _context(memo)
    if ctx.runs is not None:
        await ctx.runs.stop()  # their last status is written
    if ctx.elector is not None:
        # Hand over now, not after kopf has drained its idle workers (seconds later).
        await ctx.elector.release()
    if ctx.events is not None:
        await ctx.events.stop()
    if ctx.mirror is not None:
        await ctx.mirror.stop()
    ctx.kube.close()  # serve() closes it too, for a standby that never ran kopf


async def _observe(*, event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    ctx = _context(memo)
    obj: dict[str, Any] = dict(event["object"])  # the raw JSON: no view to convert
    deleted = event.get("type") == "DELETED" or bool(
        obj.get("metadata", {}).get("deletionTimestamp")
    )
    if ctx.runs is not None:
        ctx.runs.observe(obj, deleted=deleted)
    if ctx.mirror is not None:
        if deleted:
            metadata = obj["metadata"]
            await ctx.mirror.forget(
                metadata["name"],
                namespace=metadata["namespace"],
                version=metadata.get("resourceVersion"),
            )
        else:
            await ctx.mirror.observe(obj)


async def _observe_job(*, event: kopf.RawEvent, memo: Any, **_: Any) -> None:
    """Job transitions, handed to the attempt waiting for that Job (if any)."""
    job: dict[str, Any] = dict(event["object"])
    _context(memo).jobs.observe(job, deleted=event.get("type") == "DELETED")
