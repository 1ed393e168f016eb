"""The engine's settings section (STAGEFLOW_*), shared by every process that runs tasks."""

from __future__ import annotations

from typing import Annotated, TypedDict

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stageflow.engine.conditions import DEFAULT_MAX_SECONDS, DEFAULT_MAX_STEPS, CostLimit
from stageflow.engine.plan import (
    DEFAULT_MAX_INSTANCES,
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MAX_SPEC_BYTES,
    DEFAULT_MAX_TASKS,
)
from stageflow.engine.policy import DEFAULT_TASK_IMAGE, TaskPolicy
from stageflow.engine.templates import DEFAULT_MAX_RENDERED_BYTES


class CompileLimits(TypedDict):
    """The keyword arguments of compile_workflow that bound a run and what it may run."""

    max_tasks: int
    max_items: int
    max_output_bytes: int
    max_instances: int
    max_rendered_bytes: int
    max_spec_bytes: int
    condition_limit: CostLimit
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
    max_task_instances: int = Field(
        default=DEFAULT_MAX_INSTANCES,
        ge=1,
        description="Task entries one run may hold: its tasks plus every forEach instance.",
    )
    max_rendered_bytes: int = Field(
        default=DEFAULT_MAX_RENDERED_BYTES,
        ge=1024,
        description="What the references in one task's params may render to, in bytes.",
    )
    max_spec_bytes: int = Field(
        default=DEFAULT_MAX_SPEC_BYTES,
        ge=1024,
        description="A run's normalised spec, in bytes (what its WorkflowRun stores).",
    )
    cel_max_steps: int = Field(
        default=DEFAULT_MAX_STEPS, ge=100, description="Interpreter steps one condition may take."
    )
    cel_max_seconds: float = Field(
        default=DEFAULT_MAX_SECONDS, gt=0, description="Seconds one condition may take."
    )
    max_threads: int = Field(default=64, ge=1, description="Threads for sync in-process tasks.")
    cache_max_entries: int = Field(
        default=10_000,
        ge=1,
        description="Result cache: entries kept (in memory: per process; in Redis: per "
        "namespace); past it the least recently used is evicted.",
    )
    cache_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=8 * 1024,
        description="Result cache in memory (no STAGEFLOW_REDIS_URL): bytes of entries kept "
        "in all; past it the least recently used is evicted. In Redis each entry is at most a "
        "task's outputs (8 KiB), so the entries bound it.",
    )
    status_flush_seconds: float = Field(
        default=0.05, ge=0, description="How long status writes are coalesced."
    )

    template_revision_history: int = Field(
        default=10, ge=1, le=1000, description="Revisions of each template kept readable."
    )
    priority_aging_seconds: float = Field(
        default=60.0,
        gt=0,
        le=365 * 24 * 3600,
        description="What one point of a run's priority is worth in waiting: a queued run is "
        "let in before runs submitted up to this much earlier per point of priority it has "
        "over them (so a low-priority run is never starved for ever).",
    )
    admission_lease_seconds: float = Field(
        default=30.0,
        ge=1,
        le=3600,
        description="Local backend on Redis: a concurrency key held by an API replica that "
        "died is free again after this (its holder renews it three times per lease).",
    )
    schedules: bool = Field(
        default=True,
        description="Fire schedules: the leading operator (kubernetes), or the API replica "
        "holding the scheduler lease (local). Off: schedules are kept, and none fires.",
    )
    schedule_poll_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How often the scheduler looks at schedules with runs going or slots "
        "waiting, and at changed specs (a slot itself fires on time, not on this).",
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
            "max_instances": self.max_task_instances,
            "max_rendered_bytes": self.max_rendered_bytes,
            "max_spec_bytes": self.max_spec_bytes,
            "condition_limit": CostLimit(
                max_steps=self.cel_max_steps, max_seconds=self.cel_max_seconds
            ),
            "policy": TaskPolicy(
                images=tuple(self.task_images or [self.task_image]),
                service_accounts=tuple(self.task_service_accounts),
            ),
        }

    @field_validator("task_modules", "task_images", "task_service_accounts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return split_commas(value)
