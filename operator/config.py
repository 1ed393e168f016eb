"""The operator's settings: one object, read from STAGEFLOW_* variables."""

from __future__ import annotations

import socket
import uuid

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from stageflow.engine.config import EngineSettings
from stageflow.kube.config import KubeSettings
from stageflow.kube.jobs import JobSettings
from stageflow.store.config import StoreSettings


class OperatorSettings(EngineSettings, StoreSettings, KubeSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    status_flush_seconds: float = Field(
        default=0.5,
        ge=0,
        description="How long the operator coalesces status writes of a run: a change is in "
        "the WorkflowRun within this plus one write; a run that ends within it costs one patch.",
    )
    namespace: str | None = Field(
        default=None, description="Watch WorkflowRuns in this namespace; unset watches all."
    )
    admission_grace_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="After start (or taking over), how long no queued run is let in, while "
        "the runs under way before take their concurrency keys back.",
    )
    mirror_resync_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often failed mirror writes are retried and Redis is checked for a "
        "restart or flush (which calls for a resync).",
    )
    task_image_pull_policy: str = Field(
        default="IfNotPresent", description="imagePullPolicy of task Jobs' containers."
    )
    task_service_account: str | None = Field(
        default=None, description="Service account of task pods (default: the namespace's)."
    )
    task_run_as_user: int = Field(default=10001, ge=1, description="Non-root uid of task pods.")
    job_ttl_seconds: int = Field(
        default=3600, ge=0, description="ttlSecondsAfterFinished of task Jobs."
    )
    liveness_port: int | None = Field(
        default=None, description="Serve kopf's liveness probe on this port (/healthz)."
    )
    watch_stale_seconds: float = Field(
        default=60.0,
        ge=0,
        description="Fail the liveness probe when a watch has not delivered a change the "
        "apiserver has held this long (a stuck watch; an idle one passes). 0: no check.",
    )
    events_per_run: int = Field(
        default=10,
        ge=0,
        description="Kubernetes Events about task failures and retries per run; past it, one "
        "Event says the rest are in the status (a run's start and end always get one).",
    )
    leader_election: bool = Field(
        default=True,
        description="Run only while holding a coordination.k8s.io Lease, so a second "
        "operator started by hand stands by instead of running every task again (Argo's "
        "controller elects too unless told not to). false: one operator, no Lease.",
    )
    lease_name: str = Field(default="stageflow-operator", description="The Lease's name.")
    lease_namespace: str | None = Field(
        default=None,
        description="The Lease's namespace (default: STAGEFLOW_NAMESPACE, else `default`).",
    )
    lease_duration_seconds: int = Field(
        default=15,
        ge=2,
        description="A standby takes over this long after the leader last renewed.",
    )
    lease_renew_deadline_seconds: float = Field(
        default=10,
        gt=0,
        description="A leader that could not renew for this long stops its runs (and exits); "
        "less than the duration, so it has stopped before a standby can take over.",
    )
    lease_retry_seconds: float = Field(
        default=2, gt=0, description="How often the leader renews and a standby tries."
    )
    leader_identity: str = Field(
        default_factory=lambda: f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}",
        description="This candidate's name in the Lease (default: host name and a suffix).",
    )
    metrics_port: int | None = Field(
        default=None, description="Serve Prometheus metrics on this port (/metrics)."
    )

    @model_validator(mode="after")
    def _renew_before_expiry(self) -> OperatorSettings:
        if self.lease_renew_deadline_seconds >= self.lease_duration_seconds:
            raise ValueError(
                "lease_renew_deadline_seconds must be shorter than lease_duration_seconds"
            )
        return self

    def job_settings(self) -> JobSettings:
        return JobSettings(
            image=self.task_image,
            pull_policy=self.task_image_pull_policy,
            service_account=self.task_service_account,
            ttl_seconds_after_finished=self.job_ttl_seconds,
            run_as_user=self.task_run_as_user,
        )
