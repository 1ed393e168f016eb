"""`stageflow operator`: kopf, configured for stageflow, against the current cluster."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import kopf

from stageflow import logs
from stageflow.engine import Executor, InProcessExecutor, TaskExecutor, registry
from stageflow.kube import KubeClient, ObjectKey, load_configuration
from stageflow.kube.resource import RUN_LABEL
from stageflow.operator.config import OperatorSettings
from stageflow.operator.context import OperatorContext
from stageflow.operator.handlers import LoginFn, build_registry
from stageflow.operator.kube_events import KubeEventRecorder
from stageflow.operator.leader import LeaseElector
from stageflow.operator.metrics import LEADER, serve_metrics
from stageflow.operator.mirror import RedisMirror
from stageflow.operator.probes import StandbyProbe
from stageflow.operator.run_manager import RunManager
from stageflow.operator.watchcheck import WatchCheck
from stageflow.store import DEFAULT_NAMESPACE
from stageflow.store.result_cache import MemoryResultCache, ResultCaches

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
    """kopf as the framework only: it keeps nothing on the WorkflowRuns (operator/run_manager.py
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
        mirror = RedisMirror(
            settings.open_redis_store(namespace=settings.namespace or DEFAULT_NAMESPACE),
            retry_seconds=settings.mirror_resync_seconds,
            list_runs=lambda: kube.list_runs_snapshot(settings.namespace),
            namespace=settings.namespace,
        )
    # Without Redis, the cache is this process's and lost when it restarts (docs/cache.md).
    entries, size = settings.cache_max_entries, settings.cache_max_bytes
    results: ResultCaches = (
        mirror.store.result_cache(max_entries=entries, max_bytes=size)
        if mirror is not None
        else MemoryResultCache(max_entries=entries, max_bytes=size)
    )
    context = OperatorContext(
        settings=settings,
        kube=kube,
        tasks=registry,
        executors=executors,
        mirror=mirror,
        results=results,
        kube_events=KubeEventRecorder(kube),
    )
    context.runs = RunManager(context)
    if settings.watch_stale_seconds > 0:
        context.run_watch, context.job_watch = _watch_checks(settings, kube)
    return context


def _watch_checks(settings: OperatorSettings, kube: KubeClient) -> tuple[WatchCheck, WatchCheck]:
    """Liveness: are the WorkflowRun and Job watches delivering what the apiserver holds?"""
    stale = settings.watch_stale_seconds
    every = stale / 4  # noted within a quarter of the bound, so stuck is told within 1.25x

    async def runs() -> dict[ObjectKey, str]:
        return await kube.run_versions(settings.namespace)

    async def jobs() -> dict[ObjectKey, str]:
        return await kube.job_versions(settings.namespace, RUN_LABEL)

    return (
        WatchCheck("WorkflowRun", runs, stale_seconds=stale, every_seconds=every),
        WatchCheck("Job", jobs, stale_seconds=stale, every_seconds=every),
    )


async def serve(
    settings: OperatorSettings,
    *,
    kube: KubeClient | None = None,
    login: LoginFn = kopf.login_via_client,
    operator_settings: kopf.OperatorSettings | None = None,
    stop_flag: asyncio.Event | threading.Event | None = None,
    ready_flag: asyncio.Event | threading.Event | None = None,
) -> bool:
    """Run the operator until `stop_flag` is set (or forever). With leader election, stand
    by until this operator holds the Lease; True if it stopped because it lost the Lease."""
    client = kube or KubeClient(load_configuration(), timeout=settings.request_timeout())
    context = make_context(settings, client)
    namespaces = [settings.namespace] if settings.namespace else []
    liveness = (
        f"http://0.0.0.0:{settings.liveness_port}/healthz" if settings.liveness_port else None
    )
    stop_metrics = serve_metrics(settings.metrics_port) if settings.metrics_port else None
    elector = make_elector(settings, client) if settings.leader_election else None
    context.elector = elector
    stopping = asyncio.Event()  # kopf's stop flag: the caller's, or a lost Lease
    watchers = [asyncio.create_task(_relay(stop_flag, stopping))] if stop_flag else []
    lost = False
    try:
        if elector is not None:
            standby = asyncio.create_task(elector.acquire())
            await _until(standby, stopping, probe_port=settings.liveness_port)
            if not standby.done() or standby.cancelled():
                return False  # stopped while standing by
            watchers.append(asyncio.create_task(_hold(elector, context, stopping)))
        else:
            LEADER.set(1)  # the one operator drives every run
        await kopf.operator(
            registry=build_registry(login=login),
            settings=operator_settings or kopf_settings(),
            memo=context,
            standalone=True,
            clusterwide=not namespaces,
            namespaces=namespaces,
            liveness_endpoint=liveness,
            stop_flag=stopping,
            ready_flag=ready_flag,
        )
        lost = elector is not None and elector.lost
    finally:
        for watcher in watchers:
            watcher.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        if elector is not None:
            await elector.release()  # if kopf's clean-up did not (it runs after the runs')
        await client.aclose()  # again, if kopf's clean-up did: closing is idempotent
        LEADER.set(0)
        if stop_metrics is not None:
            stop_metrics()
    return lost


def make_elector(settings: OperatorSettings, kube: KubeClient) -> LeaseElector:
    return LeaseElector(
        kube,
        namespace=settings.lease_namespace or settings.namespace or "default",
        name=settings.lease_name,
        identity=settings.leader_identity,
        duration=settings.lease_duration_seconds,
        renew_deadline=settings.lease_renew_deadline_seconds,
        retry=settings.lease_retry_seconds,
    )


async def _relay(flag: asyncio.Event | threading.Event, to: asyncio.Event) -> None:
    """Set `to` once the caller's flag (an asyncio or a threading Event) is set."""
    if isinstance(flag, asyncio.Event):
        await flag.wait()
    else:
        while not flag.is_set():  # noqa: ASYNC110 -- a threading.Event cannot be awaited
            await asyncio.sleep(0.1)
    to.set()


async def _until(
    standby: asyncio.Task[None], stopping: asyncio.Event, *, probe_port: int | None
) -> None:
    """Wait for leadership or a stop; meanwhile answer the liveness probe (this standby lives)."""
    probe = await StandbyProbe.start(probe_port) if probe_port else None
    stopped = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({standby, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not standby.done():
            standby.cancel()
        await asyncio.gather(standby, stopped, return_exceptions=True)
        if probe is not None:
            await probe.stop()


async def _hold(elector: LeaseElector, context: OperatorContext, stopping: asyncio.Event) -> None:
    """Renew the Lease; if it is lost, stop every run at once (before a standby can take
    over: see operator/leader.py), then stop kopf."""
    await elector.hold()
    if context.runs is not None:
        context.shutdown_write_seconds = max(
            0.0, elector.duration - elector.renew_deadline - elector.retry
        )
        await context.runs.stop()
    stopping.set()


def run(settings: OperatorSettings | None = None) -> None:
    logs.configure(level=logging.INFO)  # STAGEFLOW_LOG_FORMAT: text or json
    # kopf logs "Handler ... succeeded." at INFO for every watch event: a line per event
    # says nothing an operator's log needs, and costs CPU under load. Warnings still show.
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if asyncio.run(serve(settings or OperatorSettings())):
        raise SystemExit("lost the leader Lease: exiting, to start again as a standby")
