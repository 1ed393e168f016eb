"""coordination.k8s.io/v1 Leases: the operator's leader election (operator/leader.py).

Read, create, and replace at a resourceVersion: a replace from a stale read fails with
KubeConflictError, which is what makes two operators unable to both hold the Lease.
"""

from __future__ import annotations

from typing import cast

import kubernetes.client

from stageflow.kube.bodies import Lease
from stageflow.kube.transport import ApiCalls


class LeaseApi(ApiCalls):
    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        super()._connect(api)
        self._coordination = kubernetes.client.CoordinationV1Api(api)

    async def get_lease(self, namespace: str, name: str) -> Lease | None:
        lease = await self._maybe(self._coordination.read_namespaced_lease, name, namespace)
        return None if lease is None else cast(Lease, self._plain(lease))

    async def create_lease(self, namespace: str, body: Lease) -> Lease:
        """Create a Lease; KubeConflictError if one exists."""
        created = await self._call(self._coordination.create_namespaced_lease, namespace, body)
        return cast(Lease, self._plain(created))

    async def replace_lease(self, namespace: str, name: str, body: Lease) -> Lease:
        """Replace a Lease at the resourceVersion in `body`; KubeConflictError if it moved on."""
        replaced = await self._call(
            self._coordination.replace_namespaced_lease, name, namespace, body
        )
        return cast(Lease, self._plain(replaced))
