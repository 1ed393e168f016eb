"""The operator's Redis mirror on a real redis-server, fed WorkflowRuns as the watch and a
list would give them (no apiserver needed: the list is a function the test controls)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, cast

import pytest

from stageflow.engine import RunPhase
from stageflow.kube import GROUP, VERSION, RunListing
from stageflow.kube.bodies import WorkflowRun
from stageflow.operator.mirror import RedisMirror
from stageflow.store import RedisStore
from stageflow.store.connection import RedisConnectionSettings, connect
from tests.support.polling import eventually
from tests.support.redis_server import RedisServer, running_redis

NS = "team-a"
Objects = dict[str, dict[str, Any]]


def rid(name: str) -> str:
    """The run ID (a UUID, as every run's) the tests call `name`."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def wfr(name: str, version: int, phase: str = "Running", *, ns: str = NS) -> dict[str, Any]:
    """A WorkflowRun as the apiserver sends it, at resourceVersion `version`; its name is
    rid(name)."""
    task_phase = {"Running": "Running", "Succeeded": "Succeeded"}.get(phase, "Pending")
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "WorkflowRun",
        "metadata": {
            "name": rid(name),
            "namespace": ns,
            "resourceVersion": str(version),
            "creationTimestamp": "2026-11-01T00:00:00Z",
        },
        "spec": {"workflow": [{"type": "parallel", "tasks": ["task_a"]}]},
        "status": {"phase": phase, "tasks": {"task_a": {"phase": task_phase}}},
    }


class Lister:
    """The apiserver's list: `objects` at `version`; `during` runs while the list is in
    flight (the watch events that race a resync)."""

    def __init__(self) -> None:
        self.objects: Objects = {}
        self.version: str | None = "0"
        self.calls = 0
        self.during: Callable[[], Awaitable[None]] | None = None

    async def __call__(self) -> RunListing:
        self.calls += 1
        listing = RunListing(
            items=cast(list[WorkflowRun], list(self.objects.values())),
            resource_version=self.version,
        )
        if self.during is not None:
            during, self.during = self.during, None
            await during()
        return listing


def make_mirror(store: RedisStore, lister: Lister) -> RedisMirror:
    return RedisMirror(store, retry_seconds=0.05, list_runs=lister, namespace=None)


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore.from_url(redis_url, namespace=NS)
    yield opened
    await opened.close()


async def phase_of(store: RedisStore, name: str) -> RunPhase | None:
    stored = await store.get(rid(name))
    return None if stored is None else stored.status.phase


async def test_a_resync_racing_newer_events_never_goes_backwards(store: RedisStore) -> None:
    lister = Lister()
    mirror = make_mirror(store, lister)
    lister.objects = {"r1": wfr("r1", 5, "Running"), "r2": wfr("r2", 6, "Running")}
    lister.version = "10"

    async def newer_events() -> None:  # after the list was taken, before it is written
        mirror.observe(wfr("r1", 12, "Succeeded"))
        mirror.forget(rid("r2"), namespace=NS, version="13")
        assert await mirror.flush()

    lister.during = newer_events
    await mirror.resync()
    assert await phase_of(store, "r1") is RunPhase.SUCCEEDED
    assert await store.task_phases(rid("r1")) == {"task_a": "Succeeded"}
    assert await store.get(rid("r2")) is None
    assert mirror.resyncs == 1


async def test_runs_created_after_the_list_are_not_dropped(store: RedisStore) -> None:
    lister = Lister()
    mirror = make_mirror(store, lister)
    mirror.observe(wfr("gone", 3))  # deleted while the operator was away
    assert await mirror.flush()
    lister.objects = {"old": wfr("old", 4)}
    lister.version = "10"

    async def created_meanwhile() -> None:
        mirror.observe(wfr("new", 11))
        assert await mirror.flush()

    lister.during = created_meanwhile
    await mirror.resync()
    assert await phase_of(store, "old") is RunPhase.RUNNING
    assert await phase_of(store, "new") is RunPhase.RUNNING
    assert await store.get(rid("gone")) is None  # proven gone: stored at 3, absent at 10
    assert await mirror.writer.run_ids() == {(NS, rid("old")), (NS, rid("new"))}


async def test_without_a_listing_version_nothing_is_dropped(store: RedisStore) -> None:
    lister = Lister()
    mirror = make_mirror(store, lister)
    mirror.observe(wfr("unlisted", 3))
    assert await mirror.flush()
    lister.version = None
    await mirror.resync()
    assert await store.get(rid("unlisted")) is not None


async def test_a_write_that_fails_is_retried_without_a_resync(redis_url: str) -> None:
    """No free pooled connection within the pool's timeout: the write is kept and retried,
    and the retry is that one write, not another full resync."""
    client = connect(
        redis_url,
        RedisConnectionSettings(redis_max_connections=1, redis_pool_timeout_seconds=0.1),
    )
    store = RedisStore(client, namespace=NS)
    lister = Lister()
    mirror = make_mirror(store, lister)
    await mirror.resync()
    held = await client.connection_pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        mirror.observe(wfr("r1", 7, "Succeeded"))
        assert not await mirror.flush()  # no connection within the pool's timeout
        assert mirror.pending == 1
    finally:
        await client.connection_pool.release(held)
    mirror.start()

    async def drained() -> bool:
        return mirror.pending == 0

    try:
        await eventually(drained)
        assert await phase_of(store, "r1") is RunPhase.SUCCEEDED
        assert (mirror.resyncs, lister.calls) == (1, 1)
    finally:
        await mirror.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


async def test_after_redis_restarts_empty_the_mirror_equals_the_workflow_runs(
    own_redis: RedisServer,
) -> None:
    store = RedisStore.from_url(own_redis.url, namespace=NS)
    lister = Lister()
    mirror = make_mirror(store, lister)
    lister.objects = {f"r{i}": wfr(f"r{i}", 10 + i, "Succeeded") for i in range(20)}
    lister.version = "40"
    await mirror.resync()
    mirror.start()
    try:
        own_redis.kill()
        # Redis is away: watch events keep coming, and every write fails.
        for i in range(20, 40):
            lister.objects[f"r{i}"] = wfr(f"r{i}", 10 + i, "Running")
            mirror.observe(lister.objects[f"r{i}"])
        lister.version = "60"
        assert mirror.pending == 20
        own_redis.start()  # same port, empty

        async def equal() -> bool:
            names = {name for _, name in await mirror.writer.run_ids([NS])}
            if names != {rid(key) for key in lister.objects}:
                return False
            phases = [await phase_of(store, key) for key in sorted(lister.objects)]
            return phases == [
                RunPhase(obj["status"]["phase"]) for _, obj in sorted(lister.objects.items())
            ]

        await eventually(equal, within=10)
        assert mirror.pending == 0
        assert mirror.resyncs == 2  # start-up, and once when Redis answered again
    finally:
        await mirror.stop()


async def test_resyncs_asked_for_while_one_runs_are_one(store: RedisStore) -> None:
    lister = Lister()
    mirror = make_mirror(store, lister)
    lister.objects = {"r1": wfr("r1", 5)}
    await asyncio.gather(mirror.resync(), mirror.resync(), mirror.resync())
    assert (mirror.resyncs, lister.calls) == (1, 1)


async def test_a_run_named_by_kubectl_is_run_but_not_mirrored(store: RedisStore) -> None:
    """Redis keys are built only from run IDs (UUIDs, what the API gives); a WorkflowRun
    made with kubectl under another name is left out of the mirror, quietly."""
    lister = Lister()
    named = wfr("x", 3)
    named["metadata"]["name"] = "nightly"
    lister.objects = {"nightly": named, "r1": wfr("r1", 4)}
    mirror = make_mirror(store, lister)
    mirror.start()
    try:
        await mirror.resync()
        mirror.observe(named)
        mirror.forget("nightly", namespace=NS, version="5")
        assert await mirror.writer.run_ids([NS]) == {(NS, rid("r1"))}
        assert mirror.pending == 0
    finally:
        await mirror.stop()


async def test_observations_of_one_window_are_one_round_trip_newest_per_run(
    store: RedisStore,
) -> None:
    """Batched: 30 runs created and 10 of them finished within one window are one
    pipelined write, and a run seen twice in it is written once, as last seen."""
    lister = Lister()
    mirror = RedisMirror(
        store, retry_seconds=60, list_runs=lister, namespace=None, batch_seconds=0.2
    )
    batches: list[int] = []
    mirror_many = mirror.writer.mirror_many

    async def counted(writes: Any) -> list[bool]:
        batches.append(len(writes))
        return await mirror_many(writes)

    mirror.writer.mirror_many = counted  # type: ignore[method-assign]
    mirror.start()
    try:
        for i in range(30):
            mirror.observe(wfr(f"r{i}", 100 + i, "Running"))
        for i in range(10):
            mirror.observe(wfr(f"r{i}", 200 + i, "Succeeded"))

        async def drained() -> bool:
            return mirror.pending == 0

        await eventually(drained)
        assert batches == [30]
        assert [await phase_of(store, f"r{i}") for i in (0, 9, 10, 29)] == [
            RunPhase.SUCCEEDED,
            RunPhase.SUCCEEDED,
            RunPhase.RUNNING,
            RunPhase.RUNNING,
        ]
    finally:
        await mirror.stop()
