"""core/v1 Events: what the operator tells `kubectl describe workflowrun` (operator/kube_events.py
decides what and when; this posts one)."""

from __future__ import annotations

import kubernetes.client

from stageflow.kube.bodies import KubeEvent
from stageflow.kube.direct import events_path
from stageflow.kube.transport import ApiCalls


class EventApi(ApiCalls):
    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        super()._connect(api)
        self._events = kubernetes.client.CoreV1Api(api)

    async def create_event(self, namespace: str, body: KubeEvent) -> None:
        """Post a core/v1 Event (what `kubectl describe` shows of an object). Several per
        run, so sent directly (kube/direct.py), and the answer is not read into a V1Event:
        building the typed model cost more than the request."""
        await self._send(self._events.create_namespaced_event, "POST", events_path(namespace), body)
