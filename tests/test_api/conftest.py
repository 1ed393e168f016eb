"""An API client per store (memory, Redis, and the kubernetes backend on a real apiserver)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from stageflow.api import create_app
from stageflow.api.backends import KubernetesBackend
from stageflow.api.config import ApiSettings
from stageflow.engine import TaskRegistry
from stageflow.kube import KubeClient, load_configuration
from stageflow.store import RedisStore
from tests.support.api import finish_task_threads


@pytest.fixture(params=["memory", "redis", pytest.param("kubernetes", marks=pytest.mark.e2e)])
def client(request: pytest.FixtureRequest, tasks: TaskRegistry) -> Iterator[TestClient]:
    """One HTTP contract, three ways to serve it: the local backend in memory, the local
    backend on Redis, and the kubernetes backend on a real apiserver with the operator."""
    if request.param == "kubernetes":
        cluster = request.getfixturevalue("e2e_cluster")
        namespace = request.getfixturevalue("k8s_namespace")
        settings = ApiSettings(
            backend="kubernetes", namespace=namespace, redis_url=cluster.redis.url
        )
        backend = KubernetesBackend(
            KubeClient(load_configuration()),
            RedisStore.from_url(cluster.redis.url, namespace=namespace),
            tasks,
            settings,
            namespace=namespace,
        )
        app = create_app(settings, tasks=tasks, backend=backend)
    else:
        redis_url = request.getfixturevalue("redis_url") if request.param == "redis" else None
        settings = ApiSettings(redis_url=redis_url, status_flush_seconds=0.01)
        app = create_app(settings, tasks=tasks)
    before = set(threading.enumerate())
    with TestClient(app) as test_client:
        yield test_client
    finish_task_threads(set(threading.enumerate()) - before)
