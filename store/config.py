"""The store's settings section (STAGEFLOW_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stageflow.store.base import DEFAULT_FINISHED_TTL_SECONDS, RunStore
from stageflow.store.memory import MemoryStore
from stageflow.store.redis_store import RedisStore


class StoreSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    redis_url: str | None = Field(
        default=None, description="redis://host:port/db; unset keeps state in memory (one process)."
    )
    finished_ttl_seconds: int = Field(
        default=DEFAULT_FINISHED_TTL_SECONDS, ge=1, description="How long finished runs are kept."
    )

    def open_store(self) -> RunStore:
        if self.redis_url:
            return RedisStore.from_url(
                self.redis_url, finished_ttl_seconds=self.finished_ttl_seconds
            )
        return MemoryStore(finished_ttl_seconds=self.finished_ttl_seconds)
