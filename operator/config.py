"""The operator's settings: one object, read from STAGEFLOW_* variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stageflow.engine.config import EngineSettings
from stageflow.store.config import StoreSettings


class OperatorSettings(EngineSettings, StoreSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    namespace: str | None = Field(
        default=None, description="Watch WorkflowRuns in this namespace; unset watches all."
    )
    mirror_resync_seconds: float = Field(
        default=2.0, gt=0, description="How often mirror writes that failed are retried."
    )
    liveness_port: int | None = Field(
        default=None, description="Serve kopf's liveness probe on this port (/healthz)."
    )
