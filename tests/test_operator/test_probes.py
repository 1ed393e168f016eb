"""The operator's liveness probe: a standby answers it and frees the port for kopf's when it
leads; a leader's fails when a watch is stuck, and not when it is merely idle."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from stageflow.kube import GROUP, VERSION
from stageflow.operator.probes import StandbyProbe
from tests.support.kmock_operator import NAMESPACE, RESOURCE, SEED, STAMPING, Cluster, StartOperator
from tests.support.redis_server import free_port

pytestmark = STAMPING


async def test_standby_probe_answers_then_frees_its_port() -> None:
    port = free_port()
    probe = await StandbyProbe.start(port, host="127.0.0.1")
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/healthz")
        assert response.status_code == 200
        assert response.json() == {"standby": True}
    await probe.stop()
    again = await StandbyProbe.start(port, host="127.0.0.1")  # the port is free again
    await again.stop()


async def test_the_liveness_probe_fails_when_the_watch_is_stuck_not_when_idle(
    cluster: Cluster, start_operator: StartOperator, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    await start_operator(liveness_port=port, watch_stale_seconds=1.0)
    url = f"http://127.0.0.1:{port}/healthz"
    async with httpx.AsyncClient() as client:
        # Idle, then busy with a run the watch delivers: healthy.
        assert (await client.get(url)).json() == {"watches": "keeping up"}
        name = await cluster.create(SEED)
        await cluster.wait_for_phase(name, "Succeeded")

        # A run the apiserver holds but the watch never delivers (written into the mock's
        # storage, which emits no watch event): a stuck watch, as a half-open stream is.
        unseen = str(uuid.uuid4())
        cluster.mock.objects[RESOURCE, NAMESPACE, unseen] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowRun",
            "metadata": {"name": unseen, "namespace": NAMESPACE, "resourceVersion": "999999"},
            "spec": SEED,
        }
        # kopf caches a probe's answer for 10 s: the stuck watch shows after that.
        async with asyncio.timeout(20):
            while (response := await client.get(url)).status_code == 200:  # noqa: ASYNC110
                await asyncio.sleep(0.5)  # polling the probe is what the kubelet does
    assert response.status_code == 500
    assert f"the WorkflowRun watch is stuck: {NAMESPACE}/{unseen}" in caplog.text
    assert name not in caplog.text.split("watch is stuck")[-1]  # the delivered run is fine
