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
    host: str = Field(
        default="127.0.0.1",
        description="Where `stageflow api` listens; a non-loopback address needs an auth mode.",
    )
    port: int = Field(default=8080, ge=1, le=65535, description="The port `stageflow api` serves.")
    log_level: str = Field(default="info", description="uvicorn's log level.")
    max_body_bytes: int = Field(
        default=512 * 1024,
        ge=1024,
        description="Largest request body; larger is a 413 (read no further than this).",
    )
    body_read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request body must arrive within this (else 408)."
    )
    max_streams: int = Field(
        default=500, ge=1, description="Event streams open at once in one API process."
    )
    max_streams_per_client: int = Field(
        default=20, ge=1, description="Event streams one client address may hold open."
    )
    max_connections: int = Field(
        default=2000, ge=1, description="Connections uvicorn serves at once (more: 503)."
    )
    header_read_timeout_seconds: float = Field(
        default=10.0, gt=0, description="A request's headers must arrive within this."
    )
    max_json_depth: int = Field(default=32, ge=4, le=500, description="Deepest JSON nesting.")
    max_string_length: int = Field(
        default=64 * 1024, ge=256, description="Longest string (or key) in a request body."
    )
