"""Assembles the FastAPI app: settings, task registry, backend, routers, error handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import stageflow
from stageflow.api import errors
from stageflow.api.backends import Backend, LocalBackend
from stageflow.api.config import ApiSettings
from stageflow.api.routes import system, workflows
from stageflow.engine import TaskRegistry, registry


def make_backend(settings: ApiSettings, tasks: TaskRegistry) -> Backend:
    if settings.backend == "kubernetes":
        raise NotImplementedError("the kubernetes backend arrives with the operator (issue 3)")
    return LocalBackend(settings.open_store(), tasks, settings)


def create_app(
    settings: ApiSettings | None = None, *, tasks: TaskRegistry | None = None
) -> FastAPI:
    settings = settings or ApiSettings()
    if tasks is None:
        registry.load(settings.task_modules)
        tasks = registry

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        backend = make_backend(settings, tasks)
        await backend.start()
        app.state.backend = backend
        try:
            yield
        finally:
            await backend.close()

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
    app.include_router(workflows.router)
    app.include_router(system.router)
    return app
