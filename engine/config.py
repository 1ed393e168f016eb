"""The engine's settings section (STAGEFLOW_*), shared by every process that runs tasks."""

from __future__ import annotations

from typing import Annotated, TypedDict

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stageflow.engine.plan import DEFAULT_MAX_ITEMS, DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MAX_TASKS
from stageflow.engine.policy import DEFAULT_TASK_IMAGE, TaskPolicy


class CompileLimits(TypedDict):
    """The keyword arguments of compile_workflow that bound a run and what it may run."""

    max_tasks: int
    max_items: int
    max_output_bytes: int
    policy: TaskPolicy


def split_commas(value: object) -> object:
    """A comma-separated setting (`a, b,c`) as a list; any other value as it is."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class EngineSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    task_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated modules to import for their @task functions.",
    )
    max_tasks: int = Field(default=DEFAULT_MAX_TASKS, ge=1, description="Tasks one run may hold.")
    max_foreach_items: int = Field(
        default=DEFAULT_MAX_ITEMS, ge=1, description="Items one forEach may fan out to."
    )
    max_run_output_bytes: int = Field(
        default=DEFAULT_MAX_OUTPUT_BYTES, ge=1024, description="All outputs of one run."
    )
    max_threads: int = Field(default=64, ge=1, description="Threads for sync in-process tasks.")
    status_flush_seconds: float = Field(
        default=0.05, ge=0, description="How long status writes are coalesced."
    )

    task_image: str = Field(
        default=DEFAULT_TASK_IMAGE,
        description="Image of Job tasks that name none (it runs `stageflow task run`).",
    )
    task_images: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated patterns of the images a task may name (fnmatch); "
        "empty: only STAGEFLOW_TASK_IMAGE.",
    )
    task_service_accounts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated patterns of the service accounts a Job task may name; "
        "empty: none (task pods mount no service account token).",
    )

    def limits(self) -> CompileLimits:
        """The keyword arguments of compile_workflow that bound a run."""
        return {
            "max_tasks": self.max_tasks,
            "max_items": self.max_foreach_items,
            "max_output_bytes": self.max_run_output_bytes,
            "policy": TaskPolicy(
                images=tuple(self.task_images or [self.task_image]),
                service_accounts=tuple(self.task_service_accounts),
            ),
        }

    @field_validator("task_modules", "task_images", "task_service_accounts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_commas(value)
