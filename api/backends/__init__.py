"""Backends behind the routes: `local` (runs in this process) and `kubernetes` (WorkflowRuns)."""

from stageflow.api.backends.base import Backend
from stageflow.api.backends.kubernetes import KubernetesBackend
from stageflow.api.backends.local import LocalBackend

__all__ = ["Backend", "KubernetesBackend", "LocalBackend"]
