"""The kopf handlers, in a registry of their own (no global state, one per operator).

- a daemon per WorkflowRun runs it (operator/workflow.py);
- a raw event handler sees every watch event: it passes cancellation to a
  running run and feeds the Redis mirror (so the mirror follows what is
  observed, whoever wrote it);
- start-up resyncs the mirror; clean-up closes clients.
"""

from __future__ import annotations

from typing import Any

import kopf

from stageflow.kube import GROUP, PLURAL, VERSION
from stageflow.kube.resource import RUN_LABEL
from stageflow.operator.context import OperatorContext
from stageflow.operator.workflow import plain, run_workflow

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
    kopf.daemon(
        GROUP,
        VERSION,
        PLURAL,
        id="run",
        registry=registry,
        backoff=5,
        cancellation_timeout=10,
    )(_run)
    return registry


async def _startup(memo: OperatorContext, **_: Any) -> None:
    if memo.mirror is not None:
        memo.mirror.start()
        await memo.mirror.resync()


async def _cleanup(memo: OperatorContext, **_: Any) -> None:
    if memo.mirror is not None:
        await memo.mirror.stop()
    memo.kube.close()


async def _observe(
    *,
    event: kopf.RawEvent,
    body: kopf.Body,
    name: str,
    namespace: str | None,
    memo: Any,
    **_: Any,
) -> None:
    assert isinstance(memo, OperatorContext)
    assert namespace is not None  # WorkflowRuns are namespaced
    if event.get("type") == "DELETED" or body.get("metadata", {}).get("deletionTimestamp"):
        if memo.mirror is not None:
            version = body.get("metadata", {}).get("resourceVersion")
            await memo.mirror.forget(name, namespace=namespace, version=version)
        return
    runner = memo.runners.get((namespace, name))
    if runner is not None and body.get("spec", {}).get("cancelRequested"):
        runner.cancel()
    if memo.mirror is not None:
        await memo.mirror.observe(plain(body))


async def _observe_job(*, event: kopf.RawEvent, body: kopf.Body, memo: Any, **_: Any) -> None:
    """Job transitions, handed to the attempt waiting for that Job (if any)."""
    assert isinstance(memo, OperatorContext)
    memo.jobs.observe(plain(body), deleted=event.get("type") == "DELETED")


async def _run(
    *,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    stopped: kopf.DaemonStopped,
    memo: Any,
    **_: Any,
) -> None:
    assert isinstance(memo, OperatorContext)
    assert namespace is not None  # WorkflowRuns are namespaced
    await run_workflow(ctx=memo, namespace=namespace, name=name, body=body, stopped=stopped)
