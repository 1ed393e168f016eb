"""The one module that talks to the Kubernetes API (the official, synchronous client).

Every call runs in a thread pool of our own, so no caller ever blocks an event
loop on the network. Errors come out as three kinds a caller can act on:
`None`/`False` for "not there", `KubeConflictError`, and `KubeUnavailableError`
for everything that means "the apiserver did not answer".
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Required, TypedDict, cast

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from stageflow.kube.config import DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_READ_TIMEOUT_SECONDS
from stageflow.kube.metrics import APISERVER_REQUEST_SECONDS, APISERVER_REQUESTS, verb_of
from stageflow.kube.objects import ObjectKey
from stageflow.kube.resource import GROUP, PLURAL, VERSION
from stageflow.kube.reviews import (
    SubjectAccessReviewSpec,
    SubjectAccessReviewStatus,
    TokenReviewStatus,
)


class KubeError(Exception):
    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class KubeConflictError(KubeError):
    """The object exists already (409)."""


class KubeUnavailableError(KubeError):
    """The apiserver could not be reached or failed (network error or 5xx)."""


class KubeConfigError(KubeError):
    """Neither an in-cluster service account nor a kubeconfig to reach a cluster with."""


def load_configuration(kubeconfig: str | None = None) -> kubernetes.client.Configuration:
    """In-cluster service account if there is one, else the kubeconfig (KUBECONFIG); raises
    KubeConfigError (not the client's own exception, which only this package knows)."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException:
        try:
            kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, client_configuration=configuration
            )
        except kubernetes.config.ConfigException as error:
            raise KubeConfigError(str(error)) from error
    return configuration


def _metadata_only() -> dict[str, Any]:
    """The apiserver's metadata-only list: names and versions, not whole objects (a cheap
    list, for checking that a watch keeps up). A new dict per call: the client adds its
    own headers to the one it is given."""
    return {
        "_headers": {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}
    }


class _ObjectMetadata(TypedDict, total=False):
    name: Required[str]
    namespace: str
    resourceVersion: str


class _MetadataItem(TypedDict):
    metadata: _ObjectMetadata


class _MetadataList(TypedDict, total=False):
    items: list[_MetadataItem]


def _unread(function: Callable[..., Any]) -> Callable[..., bytes]:
    """`function` answering its raw body, read in the client's thread (which returns the
    connection to the pool), for calls whose answer is not needed as a typed object.
    Non-2xx answers still raise ApiException."""

    def call(*args: Any, **kwargs: Any) -> bytes:
        return bytes(function(*args, _preload_content=False, **kwargs).data)

    call.__name__ = function.__name__  # the verb of the apiserver request metrics
    return call


def _versions_of(listing: Any) -> dict[ObjectKey, str]:
    items = cast(_MetadataList, listing).get("items") or []
    return {
        ObjectKey.of(item["metadata"]): item["metadata"].get("resourceVersion", "")
        for item in items
    }


@dataclass(frozen=True)
class RunListing:
    """A list of WorkflowRuns as of `resource_version` (the collection's): every run that
    existed at that version is in `items`. None when the server did not say."""

    items: list[dict[str, Any]]
    resource_version: str | None


class KubeClient:
    """Every call is bounded: `timeout` is (connect, read) seconds, and a failed call is not
    retried underneath (urllib3 would otherwise try a hung read four times), so one call
    answers or fails within connect + read seconds. Callers that must retry do, knowingly."""

    def __init__(
        self,
        configuration: kubernetes.client.Configuration,
        *,
        threads: int = 8,
        timeout: tuple[float, float] = (
            DEFAULT_CONNECT_TIMEOUT_SECONDS,
            DEFAULT_READ_TIMEOUT_SECONDS,
        ),
    ) -> None:
        configuration.retries = False
        self._timeout = timeout
        self._api = kubernetes.client.ApiClient(configuration)
        self._custom = kubernetes.client.CustomObjectsApi(self._api)
        self._batch = kubernetes.client.BatchV1Api(self._api)
        self._version = kubernetes.client.VersionApi(self._api)
        self._core = kubernetes.client.CoreV1Api(self._api)
        self._authn = kubernetes.client.AuthenticationV1Api(self._api)
        self._authz = kubernetes.client.AuthorizationV1Api(self._api)
        self._coordination = kubernetes.client.CoordinationV1Api(self._api)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stageflow-kube")

    async def _call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        verb, code, started = verb_of(getattr(function, "__name__", "")), "error", time.monotonic()
        try:
            result = await loop.run_in_executor(
                self._pool,
                functools.partial(function, *args, _request_timeout=self._timeout, **kwargs),
            )
            code = "200"  # the client returns only on 2xx; which one it does not say
            return result
        except ApiException as error:
            code = str(error.status) if error.status else "error"
            if error.status == 409:
                raise KubeConflictError(str(error.reason), error.status) from error
            if error.status is None or error.status >= 500:
                raise KubeUnavailableError(f"apiserver: {error.reason}", error.status) from error
            raise KubeError(
                f"apiserver: {error.status} {error.reason}: {error.body}", error.status
            ) from error
        except (HTTPError, OSError) as error:
            raise KubeUnavailableError(f"apiserver unreachable: {error}") from error
        finally:
            APISERVER_REQUESTS.labels(verb=verb, code=code).inc()
            APISERVER_REQUEST_SECONDS.labels(verb=verb).observe(time.monotonic() - started)

    async def _maybe(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._call(function, *args, **kwargs)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    # -- WorkflowRuns -------------------------------------------------------------------

    async def create_run(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        created: dict[str, Any] = await self._call(
            self._custom.create_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, body
        )
        return created

    async def get_run(self, namespace: str, name: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self._maybe(
            self._custom.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
        return found

    async def list_runs(self, namespace: str | None) -> list[dict[str, Any]]:
        return (await self.list_runs_snapshot(namespace)).items

    async def list_runs_snapshot(self, namespace: str | None) -> RunListing:
        """Every WorkflowRun (of `namespace`, or all), and the version the list was read at."""
        if namespace is None:
            listing = await self._call(
                self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL
            )
        else:
            listing = await self._call(
                self._custom.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL
            )
        return RunListing(
            items=listing.get("items", []),
            resource_version=(listing.get("metadata") or {}).get("resourceVersion") or None,
        )

    async def run_versions(self, namespace: str | None) -> dict[ObjectKey, str]:
        """(namespace, name) -> resourceVersion of every WorkflowRun, as metadata only."""
        if namespace is None:
            listing = await self._call(
                self._custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, **_metadata_only()
            )
        else:
            listing = await self._call(
                self._custom.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                **_metadata_only(),
            )
        return _versions_of(listing)

    async def job_versions(self, namespace: str | None, selector: str) -> dict[ObjectKey, str]:
        """(namespace, name) -> resourceVersion of every Job `selector` picks, metadata only."""

        # Not read into a V1JobList: the typed client cannot read a metadata-only list.
        if namespace is None:
            body = await self._call(
                _unread(self._batch.list_job_for_all_namespaces),
                label_selector=selector,
                **_metadata_only(),
            )
        else:
            body = await self._call(
                _unread(self._batch.list_namespaced_job),
                namespace,
                label_selector=selector,
                **_metadata_only(),
            )
        listing = json.loads(body)
        return _versions_of(listing)

    async def patch_run(
        self, namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        """A merge patch of the main resource (spec, metadata); None if it is gone."""
        return await self._patch(
            self._custom.patch_namespaced_custom_object, namespace, name, patch
        )

    async def patch_run_status(self, namespace: str, name: str, patch: dict[str, Any]) -> bool:
        """A merge patch of the status subresource; False if the run is gone. The patched
        object is not parsed: the operator holds the status it wrote."""
        patched = await self._maybe(
            _unread(self._custom.patch_namespaced_custom_object_status),
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            patch,
        )
        return patched is not None

    async def _patch(
        self, method: Callable[..., Any], namespace: str, name: str, patch: dict[str, Any]
    ) -> dict[str, Any] | None:
        patched: dict[str, Any] | None = await self._maybe(
            method, GROUP, VERSION, namespace, PLURAL, name, patch
        )
        return patched

    async def delete_run(self, namespace: str, name: str) -> bool:
        deleted = await self._maybe(
            self._custom.delete_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
        )
        return deleted is not None

    # -- Jobs and their pods ---------------------------------------------------------------

    def _plain(self, obj: Any) -> dict[str, Any]:
        """A typed client model as the plain camelCase dict the API server sent."""
        plain: dict[str, Any] = self._api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]
        return plain

    async def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._plain(await self._call(self._batch.create_namespaced_job, namespace, body))

    async def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        job = await self._maybe(self._batch.read_namespaced_job, name, namespace)
        return None if job is None else self._plain(job)

    async def delete_job(self, namespace: str, name: str) -> bool:
        """Delete a Job and (in the background) its pods."""
        deleted = await self._maybe(
            self._batch.delete_namespaced_job, name, namespace, propagation_policy="Background"
        )
        return deleted is not None

    async def _newest_pod(self, namespace: str, job: str) -> Any:
        """The newest pod of a Job (a retried Job has several), as the client's model; None
        when it has none."""
        pods = await self._call(
            self._core.list_namespaced_pod, namespace, label_selector=f"job-name={job}"
        )
        if not pods.items:
            return None
        return max(pods.items, key=lambda pod: pod.metadata.creation_timestamp)

    async def job_pod(self, namespace: str, job: str) -> dict[str, Any] | None:
        """The newest pod of a Job, as a plain dict; None when it has none."""
        newest = await self._newest_pod(namespace, job)
        return None if newest is None else self._plain(newest)

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

    # -- Events ----------------------------------------------------------------------------

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        """Post a core/v1 Event (what `kubectl describe` shows of an object)."""
        # Not read into a V1Event: building the typed model cost more than the request.
        await self._call(_unread(self._core.create_namespaced_event), namespace, body)

    # -- Leases (leader election) -------------------------------------------------------------

    async def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        lease = await self._maybe(self._coordination.read_namespaced_lease, name, namespace)
        return None if lease is None else self._plain(lease)

    async def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create a Lease; KubeConflictError if one exists."""
        return self._plain(
            await self._call(self._coordination.create_namespaced_lease, namespace, body)
        )

    async def replace_lease(
        self, namespace: str, name: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace a Lease at the resourceVersion in `body`; KubeConflictError if it moved on."""
        return self._plain(
            await self._call(self._coordination.replace_namespaced_lease, name, namespace, body)
        )

    async def ping(self) -> str:
        """The apiserver's version; raises KubeUnavailableError when it does not answer."""
        info = await self._call(self._version.get_code)
        return str(info.git_version)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()  # type: ignore[no-untyped-call]

    # -- reviews: who a bearer token is, and what they may do (the API's auth) -------------

    async def review_token(self, token: str) -> TokenReviewStatus:
        """A TokenReview's answer: `authenticated` and the `user` the token belongs to."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        review = self._plain(await self._call(self._authn.create_token_review, body))
        status = cast(TokenReviewStatus, review.get("status") or {})
        return status

    async def review_access(self, spec: SubjectAccessReviewSpec) -> SubjectAccessReviewStatus:
        """A SubjectAccessReview's answer: is the user in `spec` `allowed`, and why not."""
        body = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": dict(spec),
        }
        review = self._plain(await self._call(self._authz.create_subject_access_review, body))
        status = cast(SubjectAccessReviewStatus, review.get("status") or {})
        return status
