"""Where cached tasks' results are kept (engine/cache.py): in this process's memory, or in
Redis, where every API replica and the operator see them. Both are bounded.

- `MemoryResultCache`: least recently used first out, past STAGEFLOW_CACHE_MAX_ENTRIES
  entries or STAGEFLOW_CACHE_MAX_BYTES bytes (entries' JSON) in all; an entry expires
  `ttlSeconds` after it was put, by the event loop's clock (so tests on a virtual clock
  see it expire). Lost when the process ends.
- `RedisResultCache`: one key per entry (`cache:{ns}:{hash}`, expiring with Redis' own
  TTL) and a sorted set per namespace by last use (`cache:{ns}`); a put past
  STAGEFLOW_CACHE_MAX_ENTRIES evicts the least recently used (store/lua/cache_put.lua).
  Entries are at most a task's outputs (8 KiB) plus a little, so the namespace's share
  of Redis is bounded by the entries setting times that.

Both are scoped to a namespace (`in_namespace`): runs of two namespaces never share an
entry, as they share no other key.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from typing import Protocol, cast

import redis.asyncio as aioredis

from stageflow.engine.cache import entry_from_json, entry_to_json
from stageflow.engine.interfaces import CacheEntry, ResultCache
from stageflow.models.request import MAX_CACHE_TTL_SECONDS
from stageflow.store.base import DEFAULT_NAMESPACE
from stageflow.store.keys import cache_entry_key, cache_index_key
from stageflow.store.redis_runs import translated
from stageflow.store.scripts import lua

DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


class ResultCaches(ResultCache, Protocol):
    """A result cache that serves every namespace, one scope at a time (the operator's)."""

    def in_namespace(self, namespace: str) -> ResultCache: ...


def _now() -> float:
    """The running loop's clock (virtual under looptime), else the monotonic clock."""
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return time.monotonic()


class _Entries:
    """The storage every namespace's view of a MemoryResultCache shares."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.items: OrderedDict[tuple[str, str], tuple[str, float]] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    def get(self, key: tuple[str, str]) -> str | None:
        found = self.items.get(key)
        if found is None:
            return None
        text, expires = found
        if expires <= _now():
            self._drop(key)
            return None
        self.items.move_to_end(key)
        return text

    def put(self, key: tuple[str, str], text: str, ttl_seconds: int) -> None:
        size = len(text.encode())
        if size > self.max_bytes:
            return  # could never fit
        if key in self.items:
            self._drop(key)
        self.items[key] = (text, _now() + ttl_seconds)
        self.bytes += size
        while len(self.items) > self.max_entries or self.bytes > self.max_bytes:
            self._drop(next(iter(self.items)))
            self.evictions += 1

    def _drop(self, key: tuple[str, str]) -> None:
        text, _ = self.items.pop(key)
        self.bytes -= len(text.encode())


class MemoryResultCache:
    """Results in this process's memory, least recently used first out (see the module)."""

    def __init__(
        self,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        namespace: str = DEFAULT_NAMESPACE,
        _entries: _Entries | None = None,
    ) -> None:
        self._entries = _entries or _Entries(max_entries=max_entries, max_bytes=max_bytes)
        self._namespace = namespace

    def in_namespace(self, namespace: str) -> MemoryResultCache:
        """The same storage and bounds, for the runs of `namespace`."""
        return MemoryResultCache(namespace=namespace, _entries=self._entries)

    def __len__(self) -> int:
        return len(self._entries.items)

    @property
    def evictions(self) -> int:
        return self._entries.evictions

    async def get(self, key: str) -> CacheEntry | None:
        text = self._entries.get((self._namespace, key))
        return None if text is None else entry_from_json(text)

    async def put(self, key: str, entry: CacheEntry, *, ttl_seconds: int) -> None:
        self._entries.put((self._namespace, key), entry_to_json(entry), ttl_seconds)


class RedisResultCache:
    """Results in Redis, shared by every replica and the operator (see the module)."""

    def __init__(
        self,
        client: aioredis.Redis,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._redis, self._namespace, self._max_entries = client, namespace, max_entries
        self._get = client.register_script(lua("cache_get"))
        self._put = client.register_script(lua("cache_put"))

    def in_namespace(self, namespace: str) -> RedisResultCache:
        """The same client and bound, for the runs of `namespace`."""
        if namespace == self._namespace:
            return self
        return RedisResultCache(self._redis, namespace, max_entries=self._max_entries)

    @translated
    async def get(self, key: str) -> CacheEntry | None:
        text = await self._get(
            keys=[cache_entry_key(self._namespace, key), cache_index_key(self._namespace)],
            args=[key, _millis()],
        )
        if text is None:
            return None
        try:
            return entry_from_json(str(text))
        except ValueError:
            return None  # not an entry this version wrote: a miss

    @translated
    async def put(self, key: str, entry: CacheEntry, *, ttl_seconds: int) -> None:
        index = cache_index_key(self._namespace)
        evicted = cast(
            list[str],
            await self._put(
                keys=[cache_entry_key(self._namespace, key), index],
                args=[
                    key,
                    entry_to_json(entry),
                    ttl_seconds,
                    _millis(),
                    self._max_entries,
                    MAX_CACHE_TTL_SECONDS,
                ],
            ),
        )
        if evicted:
            await self._redis.delete(*(cache_entry_key(self._namespace, d) for d in evicted))


def _millis() -> int:
    """Wall-clock milliseconds: the index's order is shared by every replica."""
    return int(time.time() * 1000)
