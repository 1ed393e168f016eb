"""The status sink of a WorkflowRun: merge patches to its status subresource.

Wrapped in the engine's CoalescingSink, a burst of transitions becomes one patch
carrying every task that changed; each task's entry is written whole (unset
fields as null, so a cleared message disappears), and other tasks are untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from stageflow.engine import RunPhase, RunStatus
from stageflow.engine.status import utcnow
from stageflow.kube import KubeClient, status_patch
from stageflow.store import RunStore, StoreUnavailableError

logger = logging.getLogger(__name__)


class StatusPatcher:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        *,
        generation: Callable[[], int | None],
        logs: RunStore | None = None,
    ) -> None:
        self._logs = logs
        self._kube = kube
        self._namespace = namespace
        self._name = name
        self._generation = generation
        self.patches = 0
        self._phase: RunPhase | None = None
        self._since: datetime = utcnow()

    async def publish(self, status: RunStatus, changed: frozenset[str], *, final: bool) -> None:
        if status.phase is not self._phase:
            self._phase, self._since = status.phase, utcnow()
        patch = status_patch(
            status, changed, observed_generation=self._generation(), condition_since=self._since
        )
        written = await self._kube.patch_run_status(self._namespace, self._name, patch)
        self.patches += 1
        if written is None:
            logger.info(
                "WorkflowRun %s/%s is gone; status not written", self._namespace, self._name
            )

    async def record_log(self, task_id: str, text: str) -> None:
        """In-process tasks' output goes to Redis (not the WorkflowRun: etcd is no log store)."""
        if self._logs is None:
            return
        try:
            await self._logs.save_log(self._name, task_id, text)
        except StoreUnavailableError as error:
            logger.warning("log of %s/%s not kept: %s", self._name, task_id, error)
