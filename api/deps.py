"""What routes declare they need, as `Annotated` dependencies."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from stageflow.api.backends import Backend
from stageflow.engine import TaskRegistry


def get_backend(request: Request) -> Backend:
    return cast(Backend, request.app.state.backend)


def get_registry(request: Request) -> TaskRegistry:
    return cast(TaskRegistry, request.app.state.registry)


BackendDep = Annotated[Backend, Depends(get_backend)]
RegistryDep = Annotated[TaskRegistry, Depends(get_registry)]
