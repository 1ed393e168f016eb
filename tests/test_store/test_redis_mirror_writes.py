"""The operator's mirror writes (store/redis_mirror.py): ordered by resourceVersion, kept
apart by namespace, and read back through the namespace store (store/redis_store.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stageflow.engine import RunPhase
from stageflow.models.records import RunRecord
from stageflow.store import RedisMirrorWriter, RedisStore
from tests.test_store.test_stores import finished, record


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[RedisStore]:
    opened = RedisStore.from_url(redis_url, namespace="team-a")
    yield opened
    await opened.close()


@pytest.fixture
def writer(store: RedisStore) -> RedisMirrorWriter:
    """The operator's writer, on the store's pool as the operator builds it."""
    return RedisMirrorWriter.beside(store)


def in_namespace(run: RunRecord, namespace: str = "team-a") -> RunRecord:
    return run.model_copy(update={"namespace": namespace})


async def phase(store: RedisStore, run_id: str) -> RunPhase | None:
    stored = await store.get(run_id)
    return None if stored is None else stored.status.phase


async def test_mirror_writes_replace_and_a_deleted_run_stays_deleted(
    store: RedisStore, writer: RedisMirrorWriter
) -> None:
    run = in_namespace(record())
    assert await writer.mirror(run, frozenset(run.status.tasks), version="10")
    renamed = run.model_copy(update={"name": "renamed", "status": finished(run.status)})
    assert await writer.mirror(renamed, frozenset({"a"}), version="11")
    stored = await store.get(run.run_id)
    assert stored is not None
    assert stored.name == "renamed"
    assert await store.task_phases(run.run_id) == {"a": "Succeeded", "b": "Succeeded"}
    assert await writer.delete_mirrored(namespace="team-a", run_id=run.run_id, version="12")
    # A late event of the deleted run (older than the delete) cannot bring it back...
    assert not await writer.mirror(run, frozenset(run.status.tasks), version="11")
    assert await store.get(run.run_id) is None
    assert ("team-a", run.run_id) not in await writer.run_ids()
    # ...but a WorkflowRun made again under the same name (a newer version) is mirrored.
    assert await writer.mirror(run, frozenset(run.status.tasks), version="13")
    assert await store.get(run.run_id) is not None


async def test_after_the_api_deletes_a_run_no_mirror_write_brings_it_back(
    store: RedisStore, writer: RedisMirrorWriter
) -> None:
    run = in_namespace(record())
    await writer.mirror(run, frozenset(run.status.tasks), version="10")
    assert await store.delete(run.run_id)  # the API's delete knows no version
    assert not await writer.mirror(run, frozenset(run.status.tasks), version="99")
    assert await store.get(run.run_id) is None


async def test_an_older_version_is_a_no_op_and_publishes_nothing(
    store: RedisStore, writer: RedisMirrorWriter
) -> None:
    run = in_namespace(record())
    done = run.model_copy(update={"status": finished(run.status)})
    async with store.subscribe(run.run_id) as events:
        assert await writer.mirror(done, frozenset({"a", "b"}), version="10")
        assert (await asyncio.wait_for(anext(events), 5)).phase is RunPhase.SUCCEEDED
        # "9" < "10" as integers (not as strings): the older copy changes nothing.
        assert not await writer.mirror(run, frozenset({"a", "b"}), version="9")
        assert not await writer.mirror(run, frozenset({"a", "b"}), version="10")
        assert await phase(store, run.run_id) is RunPhase.SUCCEEDED
        assert await store.task_phases(run.run_id) == {"a": "Succeeded", "b": "Succeeded"}
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(events), 0.3)


async def test_versions_compare_as_integers_of_any_size(
    store: RedisStore, writer: RedisMirrorWriter
) -> None:
    run = in_namespace(record())
    done = run.model_copy(update={"status": finished(run.status)})
    assert await writer.mirror(run, frozenset(), version="99999999999999999998")
    assert await writer.mirror(done, frozenset(), version="99999999999999999999")  # > 2**53
    assert not await writer.mirror(run, frozenset(), version="99999999999999999998")
    assert await phase(store, run.run_id) is RunPhase.SUCCEEDED


async def test_a_version_that_is_not_an_integer_is_written_only_when_it_differs(
    store: RedisStore, writer: RedisMirrorWriter
) -> None:
    """Opaque versions cannot be ordered: arrival order decides, as the watch delivers."""
    run = in_namespace(record())
    done = run.model_copy(update={"status": finished(run.status)})
    assert await writer.mirror(run, frozenset(), version="a1")
    assert not await writer.mirror(done, frozenset(), version="a1")
    assert await phase(store, run.run_id) is RunPhase.PENDING
    assert await writer.mirror(done, frozenset(), version="b2")
    assert await phase(store, run.run_id) is RunPhase.SUCCEEDED
    # Never over a tombstone, whose version it cannot compare with.
    assert await writer.delete_mirrored(namespace="team-a", run_id=run.run_id, version="c3")
    assert not await writer.mirror(run, frozenset(), version="d4")
    assert await store.get(run.run_id) is None


async def test_a_delete_older_than_the_stored_run_is_a_no_op(
    store: RedisStore, writer: RedisMirrorWriter
) -> None:
    """A WorkflowRun re-created under the same name is not dropped by the old one's DELETED."""
    run = in_namespace(record())
    assert await writer.mirror(run, frozenset(), version="20")
    assert not await writer.delete_mirrored(namespace="team-a", run_id=run.run_id, version="15")
    assert await store.get(run.run_id) is not None


async def test_same_named_runs_of_two_namespaces_never_collide(redis_url: str) -> None:
    mirror = RedisMirrorWriter.from_url(redis_url)  # the operator's: writes every namespace
    team_a = RedisStore.from_url(redis_url, namespace="team-a")  # an API replica of each
    team_b = RedisStore.from_url(redis_url, namespace="team-b")
    try:
        base = record()
        in_a = in_namespace(base.model_copy(update={"status": finished(base.status)}), "team-a")
        in_b = in_namespace(base.model_copy(update={"name": "other"}), "team-b")
        assert in_a.run_id == in_b.run_id
        assert await mirror.mirror(in_a, frozenset({"a", "b"}), version="30")
        assert await mirror.mirror(in_b, frozenset({"a", "b"}), version="5")  # older, elsewhere

        assert await phase(team_a, base.run_id) is RunPhase.SUCCEEDED
        assert await phase(team_b, base.run_id) is RunPhase.PENDING
        assert await team_a.task_phases(base.run_id) == {"a": "Succeeded", "b": "Succeeded"}
        assert await team_b.task_phases(base.run_id) == {"a": "Pending", "b": "Pending"}
        page_a = await team_a.list(phase=None, limit=10, cursor=None)
        page_b = await team_b.list(phase=None, limit=10, cursor=None)
        assert [(s.namespace, s.name) for s in page_a.items] == [("team-a", "nightly")]
        assert [(s.namespace, s.name) for s in page_b.items] == [("team-b", "other")]
        assert await mirror.run_ids() == {("team-a", base.run_id), ("team-b", base.run_id)}

        assert await team_a.delete(base.run_id)
        assert await team_a.get(base.run_id) is None
        assert await phase(team_b, base.run_id) is RunPhase.PENDING
    finally:
        for store in (mirror, team_a, team_b):
            await store.close()


async def test_prune_drops_only_what_the_listing_proves_gone(
    store: RedisStore, writer: RedisMirrorWriter
) -> None:
    old, new = in_namespace(record()), in_namespace(record())
    local = record()  # the API's local backend: no version
    await writer.mirror(old, frozenset(), version="8")
    await writer.mirror(new, frozenset(), version="12")
    await store.create(local)
    listed_at = "10"
    assert await writer.prune(namespace="team-a", run_id=old.run_id, listed_at=listed_at)
    assert not await writer.prune(namespace="team-a", run_id=new.run_id, listed_at=listed_at)
    assert not await writer.prune(namespace="team-a", run_id=local.run_id, listed_at=listed_at)
    assert not await writer.prune(namespace="team-a", run_id=new.run_id, listed_at="opaque")
    assert await store.get(old.run_id) is None
    assert await store.get(new.run_id) is not None
    assert await store.get(local.run_id) is not None
    # The listing's version is the tombstone: an older copy of `old` stays out.
    assert not await writer.mirror(old, frozenset(), version="9")


async def test_a_namespace_view_shares_the_pool_and_keeps_to_its_namespace(
    store: RedisStore, writer: RedisMirrorWriter, redis_url: str
) -> None:
    """The operator keeps an in-process task's log under the run's own namespace, where
    that namespace's API replicas read it."""
    run = in_namespace(record(), "team-b")
    await writer.mirror(run, frozenset(), version="1")
    await store.in_namespace("team-b").save_logs(run.run_id, {"a": "hello\n"})
    api = RedisStore.from_url(redis_url, namespace="team-b")
    try:
        assert await api.get_log(run.run_id, "a") == "hello\n"
        assert await store.get_log(run.run_id, "a") is None  # team-a has no such run
    finally:
        await api.close()
