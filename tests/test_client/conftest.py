"""A real stageflow API per backend for the client's tests: `stageflow api` processes on
the memory and the Redis store, and the kubernetes backend on a real apiserver (e2e)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.support.cluster import kubectl
from tests.support.live_api import running_api
from tests.support.redis_server import RedisServer


@pytest.fixture(
    scope="module", params=["memory", "redis", pytest.param("kubernetes", marks=pytest.mark.e2e)]
)
def api_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The base URL of a running API; one per backend, shared by a module's tests (they
    tell their runs apart by id or by name)."""
    if request.param == "kubernetes":
        cluster = request.getfixturevalue("e2e_cluster")
        namespace = f"e2e-client-{uuid.uuid4().hex[:8]}"
        kubectl("create", "namespace", namespace)
        client = cluster.start_api(namespace)
        try:
            yield str(client.base_url).rstrip("/")
        finally:
            kubectl("delete", "namespace", namespace, "--wait=false", check=False)
        return
    redis_url = None
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        redis_url = server.url
        connection = redis.Redis.from_url(redis_url)
        connection.flushall()
        connection.close()
    with running_api(redis_url) as client:
        yield str(client.base_url).rstrip("/")
