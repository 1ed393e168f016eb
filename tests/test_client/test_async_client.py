"""`stageflow.client.AsyncClient` against a real API on every backend: the same calls as
`Client`, awaited."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from stageflow.client import (
    ApiError,
    AsyncClient,
    ConflictError,
    NotFoundError,
    RunEvent,
    RunPhase,
    RunRecord,
    Stages,
    TaskPhase,
    UnreachableError,
    apply,
    parallel,
    sequential,
)
from tests.support.workflows import SEED, sleeping


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(api_url) as client:
        yield client


async def test_submit_wait_get_and_status(client: AsyncClient) -> None:
    run_id = (
        await client.submit(Stages(parallel("task_a", "task_b"), sequential("task_c")))
    ).run_id
    record = await client.wait(run_id, timeout=60)
    assert record.status.phase is RunPhase.SUCCEEDED
    assert await client.status(run_id) == dict.fromkeys(
        ("task_a", "task_b", "task_c"), TaskPhase.SUCCEEDED
    )
    assert (await client.get(run_id)).status.progress == "3/3"


async def test_events_fold_into_the_run(client: AsyncClient) -> None:
    run_id = (await client.submit(sleeping(0.3))).run_id
    folded: RunRecord | None = None
    kinds = []
    async for event in client.events(run_id):
        kinds.append(type(event))
        folded = apply(folded, event)
    assert kinds[0] is RunRecord
    assert set(kinds[1:]) == {RunEvent}
    assert folded is not None
    assert folded.status.phase is RunPhase.SUCCEEDED


async def test_list_walks_every_page(client: AsyncClient) -> None:
    name = f"paged-{uuid.uuid4().hex[:6]}"
    run_ids = [(await client.submit({**SEED, "name": name})).run_id for _ in range(3)]
    for run_id in run_ids:
        await client.wait(run_id, timeout=60)
    mine = [run.run_id async for run in client.list(limit=None, page_size=1) if run.name == name]
    assert mine == run_ids[::-1]
    assert len([run async for run in client.list(limit=2, page_size=1)]) == 2


async def test_cancel_delete_logs_and_errors(client: AsyncClient) -> None:
    run_id = (await client.submit(sleeping(60))).run_id
    await client.cancel(run_id)
    assert (await client.wait(run_id, timeout=60)).status.phase is RunPhase.CANCELLED
    with pytest.raises(ConflictError):
        await client.cancel(run_id)
    await client.delete(run_id)
    with pytest.raises(NotFoundError) as missing:
        await client.get(run_id)
    assert (missing.value.status_code, missing.value.detail) == (404, "Workflow not found")
    with pytest.raises(ApiError) as unknown:
        await client.submit({"workflow": [{"type": "parallel", "tasks": ["task_x"]}]})
    assert unknown.value.detail == "Unknown task: task_x"
    seed = (await client.submit(SEED)).run_id
    await client.wait(seed, timeout=60)
    assert "Running task B" in await client.logs(seed, "task_b")
    assert "sleep" in {task.name for task in await client.tasks()}


async def test_wait_gives_up_after_its_timeout(client: AsyncClient) -> None:
    run_id = (await client.submit(sleeping(60))).run_id
    with pytest.raises(TimeoutError):
        await client.wait(run_id, timeout=0.5)
    await client.cancel(run_id)


async def test_an_unreachable_server_is_one_error() -> None:
    async with AsyncClient("http://127.0.0.1:1") as client:
        with pytest.raises(UnreachableError):
            await client.get("x")
        with pytest.raises(UnreachableError):
            [event async for event in client.events("x")]
