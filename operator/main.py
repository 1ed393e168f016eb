"""`stageflow operator`: kopf, configured for stageflow, against the current cluster."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf

from stageflow import logs
from stageflow.engine import Executor, InProcessExecutor, TaskExecutor, registry
from stageflow.kube import KubeClient, load_configuration
from stageflow.operator.config import OperatorSettings
from stageflow.operator.context import OperatorContext
from stageflow.operator.events import EventRecorder
from stageflow.operator.handlers import LoginFn, build_registry
from stageflow.operator.metrics import LEADER, serve_metrics
from stageflow.operator.mirror import RedisMirror
from stageflow.operator.runs import RunManager
from stageflow.store import RedisStore

PREFIX = "stageflow.dev"


class _NoDiffBase(kopf.DiffBaseStorage):
    """No last-handled state: only `on.event` handlers run, and they compare nothing.

    kopf builds a diff base for every event (a deep copy of the body) even when no
    handler reads it; this one is empty, which saves that copy on every event."""

    def build(self, **_: Any) -> Any:
        return {}

    def fetch(self, **_: Any) -> Any:
        return None

    def store(self, **_: Any) -> None:
        return None


class _NoProgress(kopf.ProgressStorage):
    """No handler progress: `on.event` handlers have none; a run's progress is its status."""

    def fetch(self, **_: Any) -> None:
        return None

    def store(self, **_: Any) -> None:
        return None

    def purge(self, **_: Any) -> None:
        return None

    def touch(self, **_: Any) -> None:
        return None

    def clear(self, *, essence: Any) -> Any:
        return essence


def kopf_settings() -> kopf.OperatorSettings:
    """kopf as the framework only: it keeps nothing on the WorkflowRuns (operator/runs.py
    says why nothing needs it). The finalizer's name stays ours so that kopf removes the
    finalizer runs made by an older operator still carry (it drops one nothing needs)."""
    settings = kopf.OperatorSettings()
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    settings.persistence.progress_storage = _NoProgress()
    settings.persistence.diffbase_storage = _NoDiffBase()
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    # No watching of CRDs and namespaces: the resources are known, and it would need
    # cluster-wide list permissions the chart does not grant (least privilege).
    settings.scanning.disabled = True
    return settings


def make_context(settings: OperatorSettings, kube: KubeClient) -> OperatorContext:
    registry.load(settings.task_modules)
    executors: dict[Executor, TaskExecutor] = {
        Executor.INPROCESS: InProcessExecutor(registry, max_threads=settings.max_threads)
    }
    mirror = None
    if settings.redis_url:
        store = RedisStore.from_url(
            settings.redis_url, finished_ttl_seconds=settings.finished_ttl_seconds
        )
        mirror = RedisMirror(
            store,
            retry_seconds=settings.mirror_resync_seconds,
            list_objects=lambda: kube.list_runs(settings.namespace),
        )
    context = OperatorContext(
        settings=settings,
        kube=kube,
        tasks=registry,
        executors=executors,
        mirror=mirror,
        events=EventRecorder(kube),
    )
    context.runs = RunManager(context)
    return context


async def serve(
    settings: OperatorSettings,
    *,
    kube: KubeClient | None = None,
    login: LoginFn = kopf.login_via_client,
    operator_settings: kopf.OperatorSettings | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> None:
    """Run the operator until `stop_flag` is set (or forever)."""
    client = kube or KubeClient(load_configuration(), timeout=settings.request_timeout())
    context = make_context(settings, client)
    namespaces = [settings.namespace] if settings.namespace else []
    liveness = (
        f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    )
    options: dict[str, Any] = {"stop_flag": stop_flag, "ready_flag": ready_flag}
    stop_metrics = serve_metrics(settings.metrics_port) if settings.metrics_port else None
    LEADER.set(1)  # one operator drives every run
    try:
        await kopf.operator(
            registry=build_registry(login=login),
            settings=operator_settings or kopf_settings(),
            memo=context,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness,
            **options,
        )
    finally:
        LEADER.set(0)
        if stop_metrics is not None:
            stop_metrics()


def run(settings: OperatorSettings | None = None) -> None:
    logs.configure(level=logging.INFO)  # STAGEFLOW_LOG_FORMAT: text or json
    # kopf logs "Handler ... succeeded." at INFO for every watch event: a line per event
    # says nothing an operator's log needs, and costs CPU under load. Warnings still show.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    asyncio.run(serve(settings or OperatorSettings()))
