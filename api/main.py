"""Assembles the FastAPI app: settings, task registry, backend, routers, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import stageflow
from stageflow.api import errors, metrics
from stageflow.api.backends import Backend, KubernetesBackend, LocalBackend
from stageflow.api.config import ApiSettings
from stageflow.api.routes import system, workflows
from stageflow.engine import TaskRegistry, registry
from stageflow.kube import KubeClient, load_configuration


def make_backend(settings: ApiSettings, tasks: TaskRegistry) -> Backend:
    if settings.backend == "kubernetes":
        kube = KubeClient(load_configuration(), timeout=settings.request_timeout())
        store = settings.open_store() if settings.redis_url else None
        return KubernetesBackend(kube, store, tasks, settings, namespace=settings.namespace)
    return LocalBackend(settings.open_store(), tasks, settings)


def create_app(
    settings: ApiSettings | None = None,
    *,
    tasks: TaskRegistry | None = None,
    backend: Backend | None = None,
) -> FastAPI:
    """The app; `backend` overrides the one the settings choose (tests inject theirs)."""
    settings = settings or ApiSettings()
    if tasks is None:
        registry.load(settings.task_modules)
        tasks = registry

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        serving = backend or make_backend(settings, tasks)
        await serving.start()
        app.state.backend = serving
        try:
            yield
        finally:
            await serving.close()

    app = FastAPI(
        title="stageflow",
        version=stageflow.__version__,
        summary="Submit workflows of parallel and sequential stages, or a DAG; "
        "read every task's status.",
        lifespan=lifespan,
    )
    app.state.registry = tasks
    app.state.settings = settings
    errors.install(app)
    metrics.install(app)
    app.include_router(workflows.router)
    app.include_router(system.router)
    return app
