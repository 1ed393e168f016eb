"""The Lease elector on the real apiserver: release hands over, a stolen or unrenewable Lease
is given up, and a standby takes over only after the old leader has given up."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from stageflow.kube import KubeClient, KubeUnavailableError, load_configuration
from stageflow.operator.leader import LeaseElector
from tests.support.cluster import Cluster
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


class Unplugged(KubeClient):
    """A client whose apiserver becomes unreachable when `down` is set."""

    down = False

    async def _call(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        if self.down:
            raise KubeUnavailableError("unplugged")
        return await super()._call(function, *args, **kwargs)


@pytest.fixture
async def kube(e2e_cluster: Cluster) -> AsyncIterator[Unplugged]:
    client = Unplugged(load_configuration(e2e_cluster.kubeconfig))
    yield client
    await client.aclose()


def elector(
    kube: KubeClient, namespace: str, lease: str, identity: str, *, duration: int = 3
) -> LeaseElector:
    return LeaseElector(
        kube,
        namespace=namespace,
        name=lease,
        identity=identity,
        duration=duration,
        renew_deadline=duration / 2,
        retry=0.1,
    )


async def standing_by(candidate: LeaseElector, behind: str) -> None:
    async def seen() -> bool:
        return candidate.holder == behind

    await eventually(seen, within=20)


async def test_release_hands_over_and_a_stolen_lease_is_given_up(
    kube: Unplugged, k8s_namespace: str
) -> None:
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    # A long Lease: a takeover within the wait below can only come from the release.
    first, second = (elector(kube, k8s_namespace, lease, name, duration=120) for name in ("a", "b"))
    await first.acquire()
    standby = asyncio.create_task(second.acquire())
    await standing_by(second, "a")
    assert not standby.done()
    await first.release()
    async with asyncio.timeout(30):
        await standby
    assert second.leading
    assert not first.leading

    holding = asyncio.create_task(second.hold())
    found = await kube.get_lease(k8s_namespace, lease)
    assert found is not None
    found["spec"]["holderIdentity"] = "intruder"
    await kube.replace_lease(k8s_namespace, lease, found)
    async with asyncio.timeout(10):
        await holding
    assert not second.leading


async def test_a_leader_that_cannot_renew_gives_up_before_the_standby_takes_over(
    kube: Unplugged, k8s_namespace: str, e2e_cluster: Cluster
) -> None:
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    other = KubeClient(load_configuration(e2e_cluster.kubeconfig))
    try:
        leader, standby = (
            elector(kube, k8s_namespace, lease, "a"),
            elector(other, k8s_namespace, lease, "b"),
        )
        await leader.acquire()
        holding = asyncio.create_task(leader.hold())
        waiting = asyncio.create_task(standby.acquire())
        await standing_by(standby, "a")
        kube.down = True  # the leader is cut off from the apiserver (the standby is not)
        async with asyncio.timeout(20):
            await holding
        gave_up = time.monotonic()
        async with asyncio.timeout(20):
            await waiting
        took_over = time.monotonic()
        assert not leader.leading
        assert standby.leading
        assert gave_up < took_over  # never two leaders at once
    finally:
        await other.aclose()
