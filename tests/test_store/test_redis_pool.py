"""The Redis pool (store/connection.py) on a real redis-server of its own: bounded, and
healthy again on the first command after the server is SIGKILLed and restarted."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import kubernetes.client
import pytest
import redis
import redis.asyncio as aioredis

from stageflow.api.config import ApiSettings
from stageflow.kube import KubeClient
from stageflow.models.records import RunRecord
from stageflow.operator.config import OperatorSettings
from stageflow.operator.main import make_context
from stageflow.store import RedisMirrorWriter, RedisStore, StoreUnavailableError
from stageflow.store.connection import RedisConnectionSettings
from tests.support.redis_server import RedisServer, running_redis
from tests.test_store.test_stores import record


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A server this test may kill; it admits 16 clients at most."""
    with running_redis("--maxclients", "16") as server:
        yield server


def connected_clients(server: RedisServer) -> int:
    client = redis.Redis.from_url(server.url)
    try:
        return int(client.info("clients")["connected_clients"]) - 1  # not this one
    finally:
        client.close()


async def test_many_concurrent_writes_wait_for_a_pooled_connection(
    own_redis: RedisServer,
) -> None:
    """600 runs mirrored at once (an operator restarting with 600 runs) on an 8-connection
    pool: every write lands, and the server never sees more than 8 connections."""
    settings = RedisConnectionSettings(redis_max_connections=8)
    writer = RedisMirrorWriter.from_url(own_redis.url, connection=settings)
    runs = [record().model_copy(update={"namespace": "team-a"}) for _ in range(600)]

    async def write(run: RunRecord) -> bool:
        return await writer.mirror(run, frozenset(run.status.tasks), version="1")

    try:
        written = await asyncio.gather(*(write(run) for run in runs))
        assert all(written)
        assert len(await writer.run_ids(["team-a"])) == 600
        assert connected_clients(own_redis) <= 8
    finally:
        await writer.close()


async def test_the_first_commands_after_a_redis_restart_succeed(own_redis: RedisServer) -> None:
    """Pooled connections to a server that was SIGKILLed are stale; none may fail a caller."""
    store = RedisStore.from_url(own_redis.url, namespace="team-a")
    writer = RedisMirrorWriter.beside(store)
    run = record().model_copy(update={"namespace": "team-a"})
    try:
        # Four commands at once leave four connections in the pool.
        await asyncio.gather(*(store.ping() for _ in range(4)))
        assert connected_clients(own_redis) == 4

        own_redis.kill()
        own_redis.start()  # same port, empty

        # Every pooled connection is stale now; each of these uses one, on its first try.
        await asyncio.gather(*(store.get(str(uuid.uuid4())) for _ in range(4)))
        assert await writer.mirror(run, frozenset(run.status.tasks), version="1")
        assert await store.get(run.run_id) is not None
    finally:
        await store.close()


async def test_an_idle_subscription_outlives_the_read_timeout(redis_url: str) -> None:
    """Event streams idle longer than STAGEFLOW_REDIS_SOCKET_TIMEOUT_SECONDS stay subscribed
    (redis-py 8.0.0 timed blocking pub/sub reads out: redis/redis-py#4098, fixed in 8.1)."""
    settings = RedisConnectionSettings(redis_socket_timeout_seconds=0.2)
    store = RedisStore.from_url(redis_url, connection=settings, namespace="team-a")
    writer = RedisMirrorWriter.beside(store)
    run = record().model_copy(update={"namespace": "team-a"})
    try:
        await writer.mirror(run, frozenset(), version="1")
        async with store.subscribe(run.run_id) as events:
            waiting = asyncio.ensure_future(anext(events))
            await asyncio.sleep(0.6)  # the condition under test: idle for three read timeouts
            await writer.mirror(run, frozenset({"a"}), version="2")
            event = await asyncio.wait_for(waiting, 5)
        assert set(event.tasks) == {"a"}
    finally:
        await store.close()


async def test_a_redis_that_never_answers_is_unavailable_not_a_hang() -> None:
    """A server that accepts connections and says nothing (hung, or a half-open socket):
    the read timeout and the bounded retries end the call with StoreUnavailableError."""
    held: list[asyncio.StreamWriter] = []

    async def mute(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, never answer

    server = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = RedisConnectionSettings(redis_socket_timeout_seconds=0.1, redis_retries=1)
    store = RedisStore.from_url(f"redis://127.0.0.1:{port}/0", connection=settings)
    try:
        with pytest.raises(StoreUnavailableError, match="Timeout"):
            await asyncio.wait_for(store.ping(), 30)  # the bound of a broken test, not of this
        # The try and its retry, each on a fresh connection whose handshake redis-py also
        # retries once: the (retries + 1)^2 read timeouts store/connection.py states.
        assert len(held) == 4
    finally:
        await store.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_the_api_and_the_operator_build_the_same_bounded_pool(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STAGEFLOW_REDIS_URL", redis_url)
    monkeypatch.setenv("STAGEFLOW_REDIS_MAX_CONNECTIONS", "7")
    monkeypatch.setenv("STAGEFLOW_REDIS_POOL_TIMEOUT_SECONDS", "3")
    api_store = ApiSettings().open_store(namespace="team-a")
    assert isinstance(api_store, RedisStore)
    context = make_context(OperatorSettings(), KubeClient(kubernetes.client.Configuration()))
    assert context.mirror is not None
    try:
        for pool in (api_store.pool, context.mirror.store.pool):
            assert isinstance(pool, aioredis.BlockingConnectionPool)
            assert pool.max_connections == 7
            assert pool.timeout == 3
            assert pool.connection_kwargs["health_check_interval"] == 10
            assert pool.connection_kwargs["retry"].get_retries() == 1
    finally:
        await api_store.close()
        await context.mirror.stop()
        await context.kube.aclose()
