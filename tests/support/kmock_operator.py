"""The operator against kmock (the kopf author's mock apiserver), for the operator's tests.

kmock stores objects as given; a real apiserver stamps resourceVersion, uid,
namespace and creationTimestamp, and kopf relies on them. `StampingEmulator`
adds them, so kopf sees each object change once (see ../shared/testing-kopf.md).
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import sys
import threading
import traceback
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import jsonpatch
import kmock
import kubernetes.client
import pytest

from stageflow.kube import GROUP, PLURAL, VERSION, KubeClient
from stageflow.kube.bodies import WorkflowRun
from tests.support.kubelet import finished_pod_status

RESOURCE = f"{GROUP}/{VERSION}/{PLURAL}"
JOBS = "batch/v1/jobs"
NAMESPACE = "default"
_versions = itertools.count(1)
# The seed workflow: two tasks in parallel, then one.
SEED: dict[str, Any] = {
    "workflow": [
        {
            "type": "parallel",
            "tasks": [{"name": "task_a", "task": "task_a"}, {"name": "task_b", "task": "task_b"}],
        },
        {"type": "sequential", "tasks": [{"name": "task_c", "task": "task_c"}]},
    ]
}


class StampingEmulator(kmock.KubernetesEmulator):
    # While set, status writes of WorkflowRuns answer 503: the apiserver is away for them.
    status_outage: bool = False
    failed_status_writes: int = 0

    async def _handle(self, request: kmock.Request) -> Any:
        if (
            self.status_outage
            and request.subresource == "status"
            and request.method == kmock.method.PATCH
            and request.resource == kmock.resource(RESOURCE)
        ):
            self.failed_status_writes += 1
            away = kmock.KubernetesError(status=503, reason="ServiceUnavailable", message="away")
            return await self._render_error(away)
        data = request.data
        if request.resource is not None and isinstance(data, dict) and request.name != "":
            if request.action == kmock.action.CREATE:
                meta = data.setdefault("metadata", {})
                meta.setdefault("namespace", request.namespace)
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("generation", 1)
                meta.setdefault(
                    "creationTimestamp", datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                )
                meta["resourceVersion"] = str(next(_versions))
            elif request.action == kmock.action.UPDATE:
                data.setdefault("metadata", {})["resourceVersion"] = str(next(_versions))
        try:
            return await super()._handle(request)
        except jsonpatch.JsonPatchTestFailed as error:
            # A JSON-patch `test` that fails is a 422 on a real apiserver (kopf's optimistic
            # concurrency for finalizers relies on it), not kmock's 500.
            conflict = kmock.KubernetesError(status=422, reason="Invalid", message=str(error))
            return await self._render_error(conflict)


# The operator's test modules set `pytestmark = STAMPING` (a conftest's own pytestmark
# applies to nothing).
STAMPING = pytest.mark.kmock(cls=StampingEmulator)


@dataclass
class Cluster:
    """The mock apiserver and a real KubeClient pointed at it."""

    mock: Any
    kube: KubeClient
    configuration: kubernetes.client.Configuration

    async def create(
        self, spec: dict[str, Any], *, status: dict[str, Any] | None = None, name: str = ""
    ) -> str:
        """Create a WorkflowRun (named `name`, else a new UUID); return its name."""
        name = name or str(uuid.uuid4())
        body: dict[str, Any] = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowRun",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": spec,
        }
        if status is not None:
            body["status"] = status
        await self.kube.create_run(NAMESPACE, cast(WorkflowRun, body))
        return name

    async def get(self, name: str) -> dict[str, Any] | None:
        # The tests read and write any field, beyond those stageflow writes (kube/bodies.py).
        return cast(dict[str, Any] | None, await self.kube.get_run(NAMESPACE, name))

    async def wait_for(
        self, name: str, check: Callable[[dict[str, Any] | None], bool], within: float = 15
    ) -> dict[str, Any] | None:
        """Poll the object until `check` holds (bounded by `within` seconds)."""
        async with asyncio.timeout(within):
            while True:
                obj = await self.get(name)
                if check(obj):
                    return obj
                await asyncio.sleep(0.02)

    async def wait_for_phase(self, name: str, *phases: str) -> dict[str, Any]:
        obj = await self.wait_for(
            name, lambda obj: obj is not None and obj.get("status", {}).get("phase") in phases
        )
        assert obj is not None
        return obj

    async def jobs(self) -> dict[str, dict[str, Any]]:
        """Job name -> Job, as stored by the mock apiserver (read with the official client
        directly: the operator itself never lists Jobs)."""

        def read() -> list[dict[str, Any]]:
            with kubernetes.client.ApiClient(self.configuration) as api:
                listing = kubernetes.client.BatchV1Api(api).list_namespaced_job(
                    NAMESPACE, _preload_content=False
                )
                # _preload_content=False answers the raw HTTP response, not the V1JobList
                # the official client's annotations promise.
                items: list[dict[str, Any]] = json.loads(listing.data)["items"]  # type: ignore[attr-defined]
                return items

        return {job["metadata"]["name"]: job for job in await asyncio.to_thread(read)}

    def job_creations(self) -> list[str]:
        return [
            request.data["metadata"]["name"]
            for request in self.mock[kmock.resource(JOBS), kmock.method.POST]
        ]

    async def add_task_pod(self, job: str, *, termination_message: str, exit_code: int = 0) -> None:
        """The pod the job controller would make, as the kubelet leaves it when it ends."""
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": f"{job}-x1", "namespace": NAMESPACE, "labels": {"job-name": job}},
            "status": finished_pod_status(termination_message, exit_code=exit_code),
        }
        response = await self.mock.post(f"/api/v1/namespaces/{NAMESPACE}/pods", json=pod)
        assert response.status == 200, await response.text()

    async def finish_job(
        self, name: str, *, ok: bool, reason: str = "BackoffLimitExceeded"
    ) -> None:
        """Play the kubelet and the job controller: the Job completes or fails."""
        condition = (
            {"type": "Complete", "status": "True"}
            if ok
            else {
                "type": "Failed",
                "status": "True",
                "reason": reason,
                "message": "the container exited with 1",
            }
        )
        counts = {"succeeded": 1} if ok else {"failed": 1}
        response = await self.mock.patch(
            f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{name}/status",
            json={"status": {**counts, "conditions": [condition]}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert response.status == 200, await response.text()

    def object_writes(self) -> list[Any]:
        """Writes of WorkflowRuns other than to their status (finalizers, annotations)."""
        writes = (kmock.method.PATCH, kmock.method.PUT)
        return [
            request
            for request in self.mock[kmock.resource(RESOURCE)]
            if request.method in writes and request.subresource is None
        ]

    def status_patches(self) -> list[Any]:
        return list(
            self.mock[kmock.resource(RESOURCE), kmock.subresource("status"), kmock.method.PATCH]
        )


@dataclass
class RunningOperator:
    """An operator in a thread of its own, with its own event loop.

    kopf, when it exits, cancels every task created while it ran; in the test's
    loop that would include kmock's request handlers. In its own loop it cannot,
    and it reaches kmock over real HTTP as it would reach an apiserver.
    """

    stop_flag: threading.Event
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop

    async def stop(self) -> None:
        """Stop as a shut-down operator does (its daemons see OPERATOR_EXITING)."""
        self.stop_flag.set()
        await asyncio.to_thread(self.thread.join, 30)
        assert not self.thread.is_alive(), f"the operator did not stop:\n{self.where()}"

    def where(self) -> str:
        """Where a stuck operator is: its thread's stack and its loop's pending tasks."""
        frames = sys._current_frames().get(self.thread.ident or 0)
        stack = "".join(traceback.format_stack(frames)) if frames else "(no frame)"
        tasks = []
        for task in _tasks_of(self.loop):
            lines = io.StringIO()
            task.print_stack(limit=6, file=lines)
            tasks.append(lines.getvalue())
        return f"thread:\n{stack}\ntasks:\n" + "\n".join(tasks)


StartOperator = Callable[..., Awaitable[RunningOperator]]


def _tasks_of(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    """The loop's tasks, read from another thread (the set may change while read)."""
    for _ in range(10):
        try:
            return list(asyncio.all_tasks(loop))
        except RuntimeError:
            continue
    return []


def run_on_loop(loop: asyncio.AbstractEventLoop, main: Coroutine[Any, Any, Any]) -> None:
    """asyncio.run, on a loop the test holds (to show its tasks if it gets stuck)."""
    with asyncio.Runner(loop_factory=lambda: loop) as runner:
        runner.run(main)
