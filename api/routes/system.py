"""Registered tasks and the probes Kubernetes calls."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from stageflow.api.auth import Authenticated
from stageflow.api.deps import BackendDep, RegistryDep
from stageflow.api.guards import GuardedRoute
from stageflow.models.api import Health, TaskInfo

router = APIRouter(route_class=GuardedRoute)


@router.get("/tasks", tags=["tasks"])
async def list_tasks(registry: RegistryDep, _: Authenticated) -> list[TaskInfo]:
    """The tasks a workflow may name (to any authenticated caller)."""
    return [
        TaskInfo(
            name=task.name,
            description=task.description,
            parameters=list(task.parameters),
            is_async=task.is_async,
        )
        for task in registry
    ]


@router.get("/healthz", tags=["probes"])
async def healthz() -> Health:
    """The process serves requests (liveness)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    tags=["probes"],
    responses={status.HTTP_503_SERVICE_UNAVAILABLE: {"model": Health}},
)
async def readyz(backend: BackendDep, response: Response) -> Health:
    """Every dependency answers (readiness)."""
    try:
        checks = await backend.readiness()
    except Exception as error:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Health(status="unavailable", checks={"error": f"{type(error).__name__}: {error}"})
    return Health(status="ok", checks=checks)
