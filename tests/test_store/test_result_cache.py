"""Where cached results are kept (store/result_cache.py): one contract, in memory and in
Redis on a real redis-server; both bounded, least recently used first out."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from stageflow.engine.cache_keys import digest
from stageflow.engine.interfaces import CacheEntry
from stageflow.store import MemoryStore, RedisStore
from stageflow.store.keys import cache_entry_key, cache_index_key
from stageflow.store.result_cache import MemoryResultCache, RedisResultCache, ResultCaches

KEYS = [digest({"n": n}) for n in range(5)]


def entry(n: int) -> CacheEntry:
    return CacheEntry(outputs={"n": n}, run_id=f"run-{n}", task_id="t", iterations=None)


@pytest.fixture(autouse=True)
def ordered_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis orders entries by wall-clock milliseconds: one tick per call, so two calls in
    the same millisecond cannot tie."""
    ticks = itertools.count(1_000_000)
    monkeypatch.setattr("stageflow.store.result_cache._millis", lambda: next(ticks))


@pytest.fixture(params=["memory", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ResultCaches]:
    if request.param == "memory":
        yield MemoryStore().result_cache(max_entries=3, max_bytes=1 << 20)
        return
    store = RedisStore.from_url(request.getfixturevalue("redis_url"), namespace="team-a")
    yield store.result_cache(max_entries=3, max_bytes=1 << 20)
    await store.close()


async def test_an_entry_is_read_back_as_it_was_put(cache: ResultCaches) -> None:
    assert await cache.get(KEYS[0]) is None
    await cache.put(
        KEYS[0],
        CacheEntry(outputs={"a": [1]}, run_id="r", task_id="t[2]", iterations=3),
        ttl_seconds=60,
    )
    assert await cache.get(KEYS[0]) == CacheEntry(
        outputs={"a": [1]}, run_id="r", task_id="t[2]", iterations=3
    )
    await cache.put(KEYS[0], entry(9), ttl_seconds=60)  # a refresh replaces it
    assert await cache.get(KEYS[0]) == entry(9)


async def test_namespaces_share_no_entry(cache: ResultCaches) -> None:
    await cache.put(KEYS[0], entry(0), ttl_seconds=60)
    other = cache.in_namespace("team-b")
    assert await other.get(KEYS[0]) is None
    await other.put(KEYS[0], entry(1), ttl_seconds=60)
    assert await cache.get(KEYS[0]) == entry(0)
    assert await other.get(KEYS[0]) == entry(1)


async def test_past_its_bound_the_least_recently_used_goes(cache: ResultCaches) -> None:
    for n in range(3):
        await cache.put(KEYS[n], entry(n), ttl_seconds=60)
    assert await cache.get(KEYS[0]) == entry(0)  # used: KEYS[1] is now the oldest
    await cache.put(KEYS[3], entry(3), ttl_seconds=60)
    assert await cache.get(KEYS[1]) is None
    assert [await cache.get(KEYS[n]) for n in (0, 2, 3)] == [entry(0), entry(2), entry(3)]


async def test_the_memory_cache_is_bounded_by_bytes_too() -> None:
    size = len('{"outputs":{"n":0},"runId":"run-0","task":"t","iterations":null}')
    cache = MemoryResultCache(max_entries=100, max_bytes=2 * size)
    for n in range(3):
        await cache.put(KEYS[n], entry(n), ttl_seconds=60)
    assert len(cache) == 2
    assert cache.evictions == 1
    assert await cache.get(KEYS[0]) is None


async def test_redis_keeps_entries_under_keys_py_names_with_their_ttl(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    cache = RedisResultCache(client, "team-a", max_entries=2)
    for n in range(3):
        await cache.put(KEYS[n], entry(n), ttl_seconds=600)
    assert cache_index_key("team-a") == "stageflow:cache:team-a"
    assert cache_entry_key("team-a", KEYS[1]) == f"stageflow:cache:team-a:{KEYS[1]}"
    assert sorted(await client.keys("stageflow:cache:*")) == sorted(
        [
            "stageflow:cache:team-a",
            f"stageflow:cache:team-a:{KEYS[1]}",
            f"stageflow:cache:team-a:{KEYS[2]}",
        ]
    )  # the evicted entry's key is deleted, not left to expire
    assert 0 < await client.ttl(cache_entry_key("team-a", KEYS[2])) <= 600
    assert await client.zcard(cache_index_key("team-a")) == 2
    await client.aclose()


def test_a_key_is_built_from_a_digest_only() -> None:
    with pytest.raises(ValueError, match="not a cache key digest"):
        cache_entry_key("team-a", "x:y")
