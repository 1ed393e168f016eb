"""Kubernetes for stageflow: the WorkflowRun resource's shape, the bodies the apiserver
sends and takes (kube/bodies.py), and the one API client (`KubeClient`, composed in
kube/client.py of one module per resource family)."""

from stageflow.kube.client import KubeClient
from stageflow.kube.errors import (
    KubeConfigError,
    KubeConflictError,
    KubeError,
    KubeUnavailableError,
)
from stageflow.kube.objects import ObjectKey
from stageflow.kube.resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    StoredTasks,
    is_deleted,
    new_object,
    record_from_object,
    status_patch,
)
from stageflow.kube.run_api import RunListing
from stageflow.kube.transport import load_configuration

__all__ = [
    "API_VERSION",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "KubeClient",
    "KubeConfigError",
    "KubeConflictError",
    "KubeError",
    "KubeUnavailableError",
    "ObjectKey",
    "RunListing",
    "StoredTasks",
    "is_deleted",
    "load_configuration",
    "new_object",
    "record_from_object",
    "status_patch",
]
