"""batch/v1 Jobs (one per task attempt) and their pods, for the operator's Job tasks and the
API's task logs.

Kubernetes retries a pod inside a Job (and a Job made before an operator restart may have
had several), so "the pod of a Job" always means its newest one: `_newest_pod` picks it,
for both what the operator reads (`job_pod`: the outputs in its termination message) and
what the API shows (`job_log`).
"""

from __future__ import annotations

import json
from typing import Any, cast

import kubernetes.client

from stageflow.kube.bodies import Job, Pod
from stageflow.kube.errors import KubeError
from stageflow.kube.objects import ObjectKey
from stageflow.kube.run_api import versions_of
from stageflow.kube.transport import ApiCalls, metadata_only, unread


class JobApi(ApiCalls):
    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        super()._connect(api)
        self._batch = kubernetes.client.BatchV1Api(api)
        self._core = kubernetes.client.CoreV1Api(api)

    async def create_job(self, namespace: str, body: Job) -> Job:
        return cast(
            Job, self._plain(await self._call(self._batch.create_namespaced_job, namespace, body))
        )

    async def get_job(self, namespace: str, name: str) -> Job | None:
        job = await self._maybe(self._batch.read_namespaced_job, name, namespace)
        return None if job is None else cast(Job, self._plain(job))

    async def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and (in the background) its pods."""
        deleted = await self._maybe(
            self._batch.delete_namespaced_job, name, namespace, propagation_policy="Background"
        )
        return deleted is not None

    async def job_versions(self, namespace: str | None, selector: str) -> dict[ObjectKey, str]:
        """(namespace, name) -> resourceVersion of every Job `selector` picks, metadata only."""

        # Not read into a V1JobList: the typed client cannot read a metadata-only list.
        if namespace is None:
            body = await self._call(
                unread(self._batch.list_job_for_all_namespaces),
                label_selector=selector,
                **metadata_only(),
            )
        else:
            body = await self._call(
                unread(self._batch.list_namespaced_job),
                namespace,
                label_selector=selector,
                **metadata_only(),
            )
        listing = json.loads(body)
        return versions_of(listing)

    async def _newest_pod(self, namespace: str, job: str) -> Any:
        """The newest pod of a Job (a retried Job has several), as the client's model; None
        when it has none."""
        pods = await self._call(
            self._core.list_namespaced_pod, namespace, label_selector=f"job-name={job}"
        )
        if not pods.items:
            return None
        return max(pods.items, key=lambda pod: pod.metadata.creation_timestamp)

    async def job_pod(self, namespace: str, job: str) -> Pod | None:
        """The newest pod of a Job, as a plain dict; None when it has none."""
        newest = await self._newest_pod(namespace, job)
        return None if newest is None else cast(Pod, self._plain(newest))

    async def job_log(self, namespace: str, job: str, *, limit_bytes: int) -> str | None:
        """The log of the newest pod of a Job; None while there is none, or it has not started
        (an unscheduled pod's log reads as empty, not as an error)."""
        newest = await self._newest_pod(namespace, job)
        if (
            newest is None
            or newest.status is None
            or newest.status.phase in (None, "Pending", "Unknown")
        ):
            return None
        try:
            text = await self._call(
                self._core.read_namespaced_pod_log,
                newest.metadata.name,
                namespace,
                limit_bytes=limit_bytes,
            )
        except KubeError as error:
            if error.status in (400, 404):  # container not started yet, or gone
                return None
            raise
        return str(text)
