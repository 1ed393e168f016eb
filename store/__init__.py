"""Where run state lives outside the engine: in memory, or in Redis (design §7).

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
from stageflow.store.records import (
    Cursor,
    InvalidRunIdError,
    RunEvent,
    RunPage,
    RunRecord,
    RunSummary,
    checked_run_id,
)
from stageflow.store.redis_store import RedisStore

__all__ = [
    "DEFAULT_FINISHED_TTL_SECONDS",
    "DEFAULT_NAMESPACE",
    "Control",
    "Cursor",
    "InvalidRunIdError",
    "MemoryStore",
    "RedisStore",
    "RunEvent",
    "RunPage",
    "RunRecord",
    "RunStore",
    "RunSummary",
    "StoreUnavailableError",
    "checked_run_id",
]
