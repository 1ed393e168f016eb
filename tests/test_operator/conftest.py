"""The operator, run in the test's event loop against kmock (the kopf author's mock apiserver).

The emulator, the `Cluster` handle and the operator's thread are in
tests/support/kmock_operator.py; here are the fixtures that make them per test.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import kopf
import kubernetes.client
import pytest
from kmock import KubernetesNotFoundError

from stageflow.kube import GROUP, VERSION, KubeClient
from stageflow.operator.config import OperatorSettings
from stageflow.operator.main import kopf_settings, serve
from tests.support.kmock_operator import (
    JOBS,
    RESOURCE,
    Cluster,
    RunningOperator,
    StartOperator,
    run_on_loop,
)


@pytest.fixture
async def cluster(kmock: Any) -> AsyncIterator[Cluster]:
    kmock.resources.load_bundled()
    kmock.resources[RESOURCE] = kmock.ResourceInfo(
        kind="WorkflowRun",
        singular="workflowrun",
        namespaced=True,
        subresources={"status"},
        verbs={"list", "watch", "get", "create", "patch", "update", "delete"},
    )
    for plural, kind in (("workflowtemplates", "WorkflowTemplate"), ("schedules", "Schedule")):
        kmock.resources[f"{GROUP}/{VERSION}/{plural}"] = kmock.ResourceInfo(
            kind=kind,
            singular=kind.lower(),
            namespaced=True,
            subresources={"status"},
            verbs={"list", "watch", "get", "create", "patch", "update", "delete"},
        )
    kmock.resources["apps/v1/controllerrevisions"] = kmock.ResourceInfo(
        kind="ControllerRevision",
        singular="controllerrevision",
        namespaced=True,
        verbs={"list", "get", "create", "delete"},
    )
    kmock.resources["v1/pods"] = kmock.ResourceInfo(
        kind="Pod", singular="pod", namespaced=True, verbs={"list", "get", "create"}
    )
    kmock.resources[JOBS] = kmock.ResourceInfo(
        kind="Job",
        singular="job",
        namespaced=True,
        subresources={"status"},
        verbs={"list", "watch", "get", "create", "patch", "update", "delete"},
    )
    configuration = kubernetes.client.Configuration(host=str(kmock.url).rstrip("/"))
    kube = KubeClient(configuration)
    yield Cluster(mock=kmock, kube=kube, configuration=configuration)
    await kube.aclose()
    # 404s are expected (a deleted run's last writes); anything else is a fault.
    assert [e for e in kmock.errors if not isinstance(e, KubernetesNotFoundError)] == []


@pytest.fixture
async def start_operator(cluster: Cluster) -> AsyncIterator[StartOperator]:
    """Start (and at teardown stop) operators; a test may stop one and start another."""
    running: list[RunningOperator] = []
    url = str(cluster.mock.url).rstrip("/")

    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=url, insecure=True)

    async def start(**overrides: Any) -> RunningOperator:
        options = {
            "status_flush_seconds": 0.01,
            "mirror_resync_seconds": 0.1,
            "leader_election": False,  # one operator per test; kmock serves no Lease
            **overrides,
        }
        settings = OperatorSettings(**options)
        operator_settings = kopf_settings()
        operator_settings.posting.enabled = False
        operator_settings.watching.server_timeout = 10
        operator_settings.scanning.disabled = True
        stop, ready = threading.Event(), threading.Event()
        main = serve(
            settings,
            kube=KubeClient(kubernetes.client.Configuration(host=url)),
            login=login,
            operator_settings=operator_settings,
            stop_flag=stop,
            ready_flag=ready,
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=run_on_loop, args=(loop, main), name="operator", daemon=True
        )
        thread.start()
        operator = RunningOperator(stop_flag=stop, thread=thread, loop=loop)
        running.append(operator)
        assert await asyncio.to_thread(ready.wait, 15), "the operator did not become ready"
        return operator

    yield start
    for operator in running:
        await operator.stop()
