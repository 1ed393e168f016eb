"""Fixtures every tier shares."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import redis

from stageflow.engine import RunStatus, TaskRegistry, registry
from tests.redis_server import RedisServer, running_redis

pytest_plugins = ["tests.cluster"]  # the e2e tier's fixtures (skip without a cluster)


@pytest.fixture
def tasks() -> TaskRegistry:
    """A registry with the built-ins, private to the test (register test tasks on it)."""
    registry.load()
    private = TaskRegistry()
    for definition in registry:
        private.register(definition.function, definition.name)
    return private


Interval = tuple[datetime, datetime]


def intervals(status: RunStatus, *task_ids: str) -> list[Interval]:
    """(startedAt, finishedAt) of each task, for overlap assertions."""
    spans: list[Interval] = []
    for task_id in task_ids:
        task = status.tasks[task_id]
        assert task.started_at is not None, task_id
        assert task.finished_at is not None, task_id
        spans.append((task.started_at, task.finished_at))
    return spans


def all_overlap(spans: list[Interval]) -> bool:
    """True when some moment lies inside every span: they all ran at once."""
    return max(start for start, _ in spans) < min(end for _, end in spans)


def never_overlap(spans: list[Interval]) -> bool:
    """True when each span starts after the previous one ended."""
    return all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))


Body = dict[str, Any]
Builder = Callable[..., Body]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session; tests flush it through `redis_url`."""
    with running_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url
