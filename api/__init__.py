"""stageflow's HTTP API (FastAPI): submit, read, list, cancel, delete and stream runs."""

from stageflow.api.main import create_app

__all__ = ["create_app"]
