"""stageflow's HTTP API (FastAPI): submit, read, list, cancel, delete and stream runs.

`create_app` is imported on first use, so `stageflow.models.api` (the response models
`stageflow.client` shares) can be imported without FastAPI and the Kubernetes client.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stageflow.api.main import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from stageflow.api.main import create_app

        return create_app
    raise AttributeError(f"module 'stageflow.api' has no attribute {name!r}")
