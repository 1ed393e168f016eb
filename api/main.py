"""Assembles the FastAPI app: settings, task registry, backend, routers, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import stageflow
from stageflow.api import errors, guards, metrics, openapi
from stageflow.api.auth import Authorizer, make_authorizer
from stageflow.api.backends import Backend, KubernetesBackend, LocalBackend
from stageflow.api.config import ApiSettings
from stageflow.api.routes import schedules, streams, system, templates, ui, workflows
from stageflow.api.streaming.slots import StreamSlots
from stageflow.api.ui.headers import SecurityHeaders
from stageflow.engine import TaskRegistry, registry
from stageflow.kube import KubeClient, load_configuration


def make_backend(settings: ApiSettings, tasks: TaskRegistry) -> Backend:
    if settings.backend == "kubernetes":
        kube = KubeClient(load_configuration(), timeout=settings.request_timeout())
        store = settings.open_store(namespace=settings.namespace) if settings.redis_url else None
        return KubernetesBackend(kube, store, tasks, settings, namespace=settings.namespace)
    return LocalBackend(
        settings.open_store(namespace=settings.namespace),
        tasks,
        settings,
        schedules=settings.schedules,
    )


def create_app(
    settings: ApiSettings | None = None,
    *,
    tasks: TaskRegistry | None = None,
    backend: Backend | None = None,
    auth: Authorizer | None = None,
) -> FastAPI:
    """The app; `backend` and `auth` override what the settings choose (tests inject theirs).

    Raises AuthConfigError when the auth settings are unsafe (see api/auth/settings.py)."""
    settings = settings or ApiSettings()
    authorizer = auth or make_authorizer(settings, host=settings.host)
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
            await authorizer.close()

    app = FastAPI(
        title="stageflow",
        version=stageflow.__version__,
        summary="Submit workflows of parallel and sequential stages, or a DAG; "
        "read every task's status.",
        lifespan=lifespan,
        docs_url=None,  # served offline by openapi.install
        redoc_url=None,  # ReDoc would load its script from a CDN
        generate_unique_id_function=openapi.operation_id,
    )
    app.state.registry = tasks
    app.state.settings = settings
    app.state.auth = authorizer
    app.state.streams = StreamSlots(
        total=settings.max_streams, per_client=settings.max_streams_per_client
    )
    errors.install(app)
    guards.install(app, settings)
    openapi.install(app)
    metrics.install(app)
    app.include_router(workflows.router)
    app.include_router(templates.router)
    app.include_router(schedules.router)
    app.include_router(streams.router)
    app.include_router(system.router)
    app.include_router(ui.router)
    app.mount("/ui/static", ui.static_files(), name="ui-static")
    app.add_middleware(SecurityHeaders)
    return app
