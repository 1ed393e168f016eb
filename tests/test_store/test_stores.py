"""One contract, two stores: memory, and Redis on a real redis-server."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from stageflow.engine import RunPhase, RunStatus, TaskPhase, TaskStatus, WorkflowRequest
from stageflow.models.records import InvalidRunIdError, RunRecord
from stageflow.store import Control, Cursor, MemoryStore, RedisStore, RunStore
from stageflow.store.keys import CONTROL, run_key, runs_key, tasks_key
from tests.support.polling import eventually

SPEC = WorkflowRequest.model_validate(
    {
        "workflow": [
            {
                "type": "parallel",
                "tasks": [{"name": "a", "task": "task_a"}, {"name": "b", "task": "task_b"}],
            }
        ]
    }
)
BASE = datetime(2026, 11, 1, tzinfo=UTC)


def record(
    created: datetime = BASE, *, ttl: int | None = None, run_id: str | None = None
) -> RunRecord:
    spec = SPEC if ttl is None else SPEC.model_copy(update={"ttl_seconds_after_finished": ttl})
    return RunRecord(
        run_id=run_id or str(uuid.uuid4()),
        name="nightly",
        labels={"team": "data"},
        created_at=created,
        spec=spec,
        status=RunStatus(tasks={"a": TaskStatus(), "b": TaskStatus()}, progress="0/2"),
    )


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RunStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url = request.getfixturevalue("redis_url")
    redis_store = RedisStore.from_url(url)
    yield redis_store
    await redis_store.close()


def finished(status: RunStatus) -> RunStatus:
    done = status.model_copy(deep=True)
    for task in done.tasks.values():
        task.phase = TaskPhase.SUCCEEDED
    done.phase = RunPhase.SUCCEEDED
    done.finished_at = BASE
    done.refresh_progress()
    return done


async def test_create_get_and_task_phases(store: RunStore) -> None:
    run = record()
    await store.create(run)
    assert await store.get(run.run_id) == run
    assert await store.task_phases(run.run_id) == {"a": "Pending", "b": "Pending"}
    assert await store.get(str(uuid.uuid4())) is None
    assert await store.task_phases(str(uuid.uuid4())) is None


async def test_update_status_writes_changed_tasks_and_run_fields(store: RunStore) -> None:
    run = record()
    await store.create(run)
    status = run.status.model_copy(deep=True)
    status.phase = RunPhase.RUNNING
    status.tasks["a"].phase = TaskPhase.RUNNING
    status.tasks["a"].attempts = 1
    assert await store.update_status(run.run_id, status, frozenset({"a"}))
    stored = await store.get(run.run_id)
    assert stored is not None
    assert stored.status.phase is RunPhase.RUNNING
    assert stored.status.tasks["a"].attempts == 1
    assert await store.task_phases(run.run_id) == {"a": "Running", "b": "Pending"}


async def test_update_after_delete_writes_nothing(store: RunStore) -> None:
    run = record()
    await store.create(run)
    assert await store.delete(run.run_id)
    assert not await store.delete(run.run_id)
    assert not await store.update_status(run.run_id, finished(run.status), frozenset({"a", "b"}))
    assert await store.get(run.run_id) is None
    assert await store.task_phases(run.run_id) is None


async def test_list_newest_first_with_filter_and_stable_cursor(store: RunStore) -> None:
    runs = [record(BASE + timedelta(seconds=i)) for i in range(5)]
    for run in runs:
        await store.create(run)
    await store.update_status(runs[1].run_id, finished(runs[1].status), frozenset({"a", "b"}))
    await store.update_status(runs[3].run_id, finished(runs[3].status), frozenset({"a", "b"}))

    first = await store.list(phase=None, limit=2, cursor=None)
    assert [s.run_id for s in first.items] == [runs[4].run_id, runs[3].run_id]
    assert first.next_cursor is not None
    await store.create(record(BASE + timedelta(seconds=10)))  # a newer run must not shift pages
    second = await store.list(phase=None, limit=2, cursor=Cursor.decode(first.next_cursor))
    assert [s.run_id for s in second.items] == [runs[2].run_id, runs[1].run_id]
    assert second.next_cursor is not None
    third = await store.list(phase=None, limit=2, cursor=Cursor.decode(second.next_cursor))
    assert [s.run_id for s in third.items] == [runs[0].run_id]
    assert third.next_cursor is None

    succeeded = await store.list(phase=RunPhase.SUCCEEDED, limit=10, cursor=None)
    assert [s.run_id for s in succeeded.items] == [runs[3].run_id, runs[1].run_id]
    assert succeeded.items[0].progress == "2/2"
    assert succeeded.items[0].labels == {"team": "data"}


async def test_same_instant_runs_page_without_loss(store: RunStore) -> None:
    runs = [record(BASE) for _ in range(4)]
    for run in runs:
        await store.create(run)
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list(phase=None, limit=1, cursor=cursor)
        seen += [s.run_id for s in page.items]
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor)
    assert sorted(seen) == sorted(run.run_id for run in runs)
    assert len(seen) == 4


async def test_cancel_flag(store: RunStore) -> None:
    run = record()
    await store.create(run)
    assert await store.mark_cancel_requested(run.run_id)
    stored = await store.get(run.run_id)
    assert stored is not None
    assert stored.cancel_requested
    assert not await store.mark_cancel_requested(str(uuid.uuid4()))
    assert await store.get(str(uuid.uuid4())) is None


async def test_subscribers_see_updates(store: RunStore) -> None:
    run = record()
    await store.create(run)
    async with store.subscribe(run.run_id) as events:
        status = run.status.model_copy(deep=True)
        status.tasks["b"].phase = TaskPhase.FAILED
        await store.update_status(run.run_id, status, frozenset({"b"}))
        event = await asyncio.wait_for(anext(events), 5)
    assert event.run_id == run.run_id
    assert set(event.tasks) == {"b"}
    assert event.tasks["b"].phase is TaskPhase.FAILED


async def test_control_messages_reach_listeners(store: RunStore) -> None:
    async with store.control() as messages:
        await store.send_control(Control(action="cancel", run_id="r1"))
        message = await asyncio.wait_for(anext(messages), 5)
    assert message == Control(action="cancel", run_id="r1")


async def test_finished_runs_expire(store: RunStore) -> None:
    run = record(ttl=1)
    await store.create(run)
    await store.update_status(run.run_id, finished(run.status), frozenset({"a", "b"}))
    assert await store.get(run.run_id) is not None
    await asyncio.sleep(1.2)
    assert await store.get(run.run_id) is None
    page = await store.list(phase=None, limit=10, cursor=None)
    assert run.run_id not in [s.run_id for s in page.items]


async def test_redis_key_layout(redis_url: str) -> None:
    """The key layout (store/keys.py), as another program (or redis-cli) would read it."""
    store = RedisStore.from_url(redis_url)
    run = record()
    await store.create(run)
    status = finished(run.status)
    await store.update_status(run.run_id, status, frozenset({"a", "b"}))
    await store.close()
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        phases = client.hgetall(f"stageflow:run:default/{run.run_id}:tasks")
        assert phases == {"a": "Succeeded", "b": "Succeeded"}
        fields = client.hgetall(f"stageflow:run:default/{run.run_id}")
        assert fields["phase"] == "Succeeded"
        assert fields["progress"] == "2/2"
        assert fields["finishedAt"] == "2026-11-01T00:00:00.000000Z"
        assert client.zscore("stageflow:runs:default", run.run_id) == BASE.timestamp() * 1e6
        assert 0 < client.ttl(run_key("default", run.run_id)) <= 7 * 24 * 3600
        assert client.ttl(tasks_key("default", run.run_id)) > 0
        assert runs_key("default") == "stageflow:runs:default"
    finally:
        client.close()


def test_cursor_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        Cursor.decode("not-a-cursor")


@pytest.mark.parametrize(
    "bad", ["x", "{id}:tasks", "{id}:logs", "{ID}", "{id} ", "*", "{id}:events"]
)
async def test_a_store_refuses_what_is_not_a_run_id(store: RunStore, bad: str) -> None:
    """Issue 10: on Redis `{ID}:tasks` named the tasks hash of a real run (DELETE wiped it)."""
    run = record()
    await store.create(run)
    run_id = bad.format(id=run.run_id, ID=run.run_id.upper())
    for call in (
        store.get(run_id),
        store.task_phases(run_id),
        store.delete(run_id),
        store.mark_cancel_requested(run_id),
        store.get_log(run_id, "a"),
    ):
        with pytest.raises(InvalidRunIdError):
            await call
    assert await store.task_phases(run.run_id) == {"a": "Pending", "b": "Pending"}


async def test_streams_share_one_redis_subscriber(redis_url: str) -> None:
    """Issue 10: each event stream held one of the pool's connections; about a hundred
    streams took them all. Now a process holds one subscriber, whatever the count."""
    store = RedisStore.from_url(redis_url)
    client = redis.Redis.from_url(redis_url)
    runs = [record() for _ in range(5)]
    try:
        for run in runs:
            await store.create(run)
        async with contextlib.AsyncExitStack() as stack:
            streams = [
                await stack.enter_async_context(store.subscribe(run.run_id))
                for run in runs
                for _ in range(10)
            ]
            assert len(client.client_list(_type="pubsub")) == 1
            for run in runs:
                status = run.status.model_copy(deep=True)
                status.tasks["a"].phase = TaskPhase.RUNNING
                await store.update_status(run.run_id, status, frozenset({"a"}))
            events = [await asyncio.wait_for(anext(stream), 5) for stream in streams]
            assert [event.run_id for event in events] == [r.run_id for r in runs for _ in range(10)]
        await eventually_unsubscribed(client)
    finally:
        await store.close()
        client.close()


async def eventually_unsubscribed(client: redis.Redis) -> None:
    """Every run channel is given up once its last listener leaves (the control stays)."""

    async def only_control() -> bool:
        return client.pubsub_channels() == [CONTROL.encode()]

    await eventually(only_control)
