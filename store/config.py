"""The store's settings section (STAGEFLOW_*)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from stageflow.store.base import DEFAULT_FINISHED_TTL_SECONDS, RunStore
from stageflow.store.connection import RedisConnectionSettings
from stageflow.store.memory import MemoryStore
from stageflow.store.redis_store import RedisStore


class StoreSettings(RedisConnectionSettings):
    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    redis_url: str | None = Field(
        default=None, description="redis://host:port/db; unset keeps state in memory (one process)."
    )
    finished_ttl_seconds: int = Field(
        default=DEFAULT_FINISHED_TTL_SECONDS, ge=1, description="How long finished runs are kept."
    )

    def open_store(self, *, namespace: str) -> RunStore:
        """Redis if configured (runs of `namespace`), else memory."""
        if self.redis_url:
            return self.open_redis_store(namespace=namespace)
        return MemoryStore(finished_ttl_seconds=self.finished_ttl_seconds)

    def open_redis_store(self, *, namespace: str) -> RedisStore:
        """The one construction of a Redis store (and its pool) for the API and the operator."""
        if not self.redis_url:
            raise ValueError("STAGEFLOW_REDIS_URL is not set")
        return RedisStore.from_url(
            self.redis_url,
            connection=self,
            namespace=namespace,
            finished_ttl_seconds=self.finished_ttl_seconds,
        )
