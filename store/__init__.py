"""Where run state lives outside the engine: in memory, or in Redis.

The API's local backend keeps its runs here; the Kubernetes backend reads the
Redis mirror the operator writes. Nothing here knows of HTTP or Kubernetes.

Redis: keys.py is the key layout, lua/ the scripts (scripts.py loads them),
redis_store.py the store of one namespace, redis_mirror.py the operator's mirror
writer, redis_runs.py what those two share.
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
from stageflow.store.redis_mirror import RedisMirrorWriter
from stageflow.store.redis_store import RedisStore

__all__ = [
    "DEFAULT_FINISHED_TTL_SECONDS",
    "DEFAULT_NAMESPACE",
    "Control",
    "Cursor",
    "MemoryStore",
    "RedisMirrorWriter",
    "RedisStore",
    "RunPage",
    "RunStore",
    "StoreUnavailableError",
]
