"""What a workflow may ask of the cluster: which container images, which service accounts.

Whoever may submit a run must not thereby run any image with any identity.
The allowlists are checked by `compile_workflow`, the one place a workflow is
validated, so the API (400 at submission) and the operator (a WorkflowRun made with
kubectl ends `Failed`, and no Job is created) can never disagree.

Patterns are shell-style (`fnmatch`, case-sensitive; `*` also matches `/`), matched
against the whole image reference as written, e.g. `ghcr.io/acme/*` or `busybox:1.36`.
A task that names no `image` runs the operator's task image, which is always allowed.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

DEFAULT_TASK_IMAGE = "stageflow:0.1.0"


@dataclass(frozen=True)
class TaskPolicy:
    """The allowlists a run's tasks are checked against."""

    images: tuple[str, ...] = (DEFAULT_TASK_IMAGE,)
    service_accounts: tuple[str, ...] = ()

    def image_allowed(self, image: str) -> bool:
        return any(fnmatchcase(image, pattern) for pattern in self.images)

    def service_account_allowed(self, name: str) -> bool:
        return any(fnmatchcase(name, pattern) for pattern in self.service_accounts)

    def refusal(
        self, *, task_id: str, image: str | None, service_account: str | None
    ) -> str | None:
        """Why a task may not run as written (None: it may)."""
        if image is not None and not self.image_allowed(image):
            allowed = ", ".join(self.images) or "none"
            return (
                f"Image not allowed: {image} (task {task_id}; "
                f"STAGEFLOW_TASK_IMAGES allows: {allowed})"
            )
        if service_account is not None and not self.service_account_allowed(service_account):
            allowed = ", ".join(self.service_accounts) or "none"
            return (
                f"Service account not allowed: {service_account} (task {task_id}; "
                f"STAGEFLOW_TASK_SERVICE_ACCOUNTS allows: {allowed})"
            )
        return None
