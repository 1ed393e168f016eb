"""The API's settings: one object, read from STAGEFLOW_* variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stageflow.api.auth.settings import AuthSettings
from stageflow.engine.config import EngineSettings
from stageflow.kube.config import KubeSettings
from stageflow.store.config import StoreSettings


class ApiSettings(EngineSettings, StoreSettings, AuthSettings, KubeSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    backend: Literal["local", "kubernetes"] = Field(
        default="local",
        description="`local` runs workflows in this process; `kubernetes` creates WorkflowRuns.",
    )
    namespace: str = Field(default="default", description="Where WorkflowRuns are created.")
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    log_level: str = "info"
