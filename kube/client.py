"""The one Kubernetes API client stageflow has: `KubeClient`, composed of one part per
resource family, so a caller holds one object and each family's calls live in a module
of their own:

- kube/transport.py: how a call is made (thread pool, timeout, metrics, errors);
- kube/direct.py: the per-run create, status patch and Event, sent over aiohttp;
- kube/run_api.py: WorkflowRuns;  kube/job_api.py: Jobs, their pods and logs;
- kube/catalog_api.py: WorkflowTemplates (and their ControllerRevisions), Schedules;
- kube/event_api.py: Events;  kube/lease_api.py: Leases;
- kube/review_api.py: TokenReviews and SubjectAccessReviews;
- here: the apiserver's version (the readiness probe's ping) and the composition.

Every call either runs in a thread pool of our own or is sent on the caller's event
loop (kube/direct.py), so no caller ever blocks an event loop on the network. Errors
come out as three kinds a caller can act on (kube/errors.py): `None`/`False` for "not
there", `KubeConflictError`, and `KubeUnavailableError` for everything that means "the
apiserver did not answer".
"""

from __future__ import annotations

import kubernetes.client

from stageflow.kube.catalog_api import ScheduleApi, TemplateApi
from stageflow.kube.errors import (
    KubeConfigError,
    KubeConflictError,
    KubeError,
    KubeUnavailableError,
)
from stageflow.kube.event_api import EventApi
from stageflow.kube.job_api import JobApi
from stageflow.kube.lease_api import LeaseApi
from stageflow.kube.review_api import ReviewApi
from stageflow.kube.run_api import RunApi, RunListing
from stageflow.kube.transport import load_configuration

__all__ = [
    "KubeClient",
    "KubeConfigError",
    "KubeConflictError",
    "KubeError",
    "KubeUnavailableError",
    "RunListing",
    "load_configuration",
]


class KubeClient(RunApi, TemplateApi, ScheduleApi, JobApi, EventApi, LeaseApi, ReviewApi):
    """Every call is bounded: `timeout` is (connect, read) seconds, and a failed call is not
    retried underneath, so one call answers or fails within connect + read seconds
    (kube/transport.py's `ApiCalls`, whose constructor this is)."""

    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        super()._connect(api)
        self._version = kubernetes.client.VersionApi(api)

    async def ping(self) -> str:
        """The apiserver's version; raises KubeUnavailableError when it does not answer."""
        info = await self._call(self._version.get_code)
        return str(info.git_version)
