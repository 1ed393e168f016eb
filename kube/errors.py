"""What a failed apiserver call raises: the three outcomes a caller can act on.

Here, apart from the client, so that the API (which turns them into HTTP answers) and the
operator (which retries some of them) name them without the machinery that raises them;
`KubeError.status` is the HTTP code when the apiserver answered.
"""

from __future__ import annotations


class KubeError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeConflictError(KubeError):
    """The object exists already (409)."""


class KubeUnavailableError(KubeError):
    """The apiserver could not be reached or failed (network error or 5xx)."""


class KubeConfigError(KubeError):
    """Neither an in-cluster service account nor a kubeconfig to reach a cluster with."""
