"""Kubernetes for stageflow: the WorkflowRun resource's shape and the one API client."""

from stageflow.kube.client import (
    KubeClient,
    KubeConfigError,
    KubeConflictError,
    KubeError,
    KubeUnavailableError,
    RunListing,
    load_configuration,
)
from stageflow.kube.objects import ObjectKey
from stageflow.kube.resource import (
    API_VERSION,
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    is_deleted,
    new_object,
    record_from_object,
    status_patch,
)

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
    "is_deleted",
    "load_configuration",
    "new_object",
    "record_from_object",
    "status_patch",
]
