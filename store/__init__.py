"""Where run state lives outside the engine: in memory, or in Redis.

The API's local backend keeps its runs here; the Kubernetes backend reads the
Redis mirror the operator writes. Nothing here knows of HTTP or Kubernetes.
"""

from stageflow.store.base import (
    DEFAULT_FINISHED_TTL_SECONDS,
    DEFAULT_NAMESPACE,
    Control,
    RunStore,
    StoreUnavailableError,
)
from stageflow.store.memory import MemoryStore
from stageflow.store.pages import Cursor, RunPage
from stageflow.store.redis_store import RedisStore

__all__ = [
    "DEFAULT_FINISHED_TTL_SECONDS",
    "DEFAULT_NAMESPACE",
    "Control",
    "Cursor",
    "MemoryStore",
    "RedisStore",
    "RunPage",
    "RunStore",
    "StoreUnavailableError",
]
