"""The apiserver client's settings section (STAGEFLOW_*): how long a call may take.

Without a bound, a call to an apiserver that accepts connections but does not
answer (starting, overloaded, half-dead) hangs forever, and so does the API
request or the operator's status write behind it. With these, one call fails
(KubeUnavailableError, a 503 from the API) within connect + read seconds.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_CONNECT_TIMEOUT_SECONDS = 3.0
DEFAULT_READ_TIMEOUT_SECONDS = 10.0


class KubeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    kube_connect_timeout_seconds: float = Field(
        default=DEFAULT_CONNECT_TIMEOUT_SECONDS,
        gt=0,
        description="How long a connection to the apiserver may take to open.",
    )
    kube_read_timeout_seconds: float = Field(
        default=DEFAULT_READ_TIMEOUT_SECONDS,
        gt=0,
        description="How long the apiserver may stay silent while answering a call.",
    )

    def request_timeout(self) -> tuple[float, float]:
        """(connect, read): the kubernetes client's `_request_timeout`."""
        return self.kube_connect_timeout_seconds, self.kube_read_timeout_seconds
