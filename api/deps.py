"""What routes declare they need, as `Annotated` dependencies.

All `async def`, though none awaits: FastAPI runs a plain `def` dependency in its
thread pool, and that hop per dependency per request was an eighth of the API's CPU
under load (measured with py-spy at 3,000 runs/min)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Path, Request

from stageflow.api.backends import Backend
from stageflow.api.errors import RunNotFoundError
from stageflow.engine import TaskRegistry
from stageflow.models.records import InvalidRunIdError, checked_run_id


async def get_backend(request: Request) -> Backend:
    return cast(Backend, request.app.state.backend)


async def get_registry(request: Request) -> TaskRegistry:
    return cast(TaskRegistry, request.app.state.registry)


async def valid_run_id(
    run_id: Annotated[
        str,
        Path(
            description="The run's ID, as POST /workflow gave it (a UUID4, lower case).",
            json_schema_extra={"format": "uuid"},
        ),
    ],
) -> str:
    """A run ID is checked before any backend or store sees it: what is not one is a
    run that cannot exist, so 404 like any unknown run."""
    try:
        return checked_run_id(run_id)
    except InvalidRunIdError:
        raise RunNotFoundError() from None


BackendDep = Annotated[Backend, Depends(get_backend)]
RegistryDep = Annotated[TaskRegistry, Depends(get_registry)]
RunId = Annotated[str, Depends(valid_run_id)]
