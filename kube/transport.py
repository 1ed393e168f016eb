"""How every apiserver call is made: the official (synchronous) client, in a thread pool of
our own, or for the few per-run calls straight from the event loop (kube/direct.py);
either way bounded in time, counted, and with its errors translated.

The one place that knows the official client's exceptions and calling conventions, so
each resource module (run_api, job_api, event_api, lease_api, review_api) says only which
call it makes and what it means. `ApiCalls` is their common base: it owns the `ApiClient`,
the pool and the timeout, and each resource module adds, in `_connect`, the official API
object it speaks through (tests/support/rbac.py reads those to derive the chart's RBAC).
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kubernetes.client
import kubernetes.config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from stageflow.kube.config import DEFAULT_CONNECT_TIMEOUT_SECONDS, DEFAULT_READ_TIMEOUT_SECONDS
from stageflow.kube.direct import DirectCalls
from stageflow.kube.errors import (
    KubeConfigError,
    KubeConflictError,
    KubeError,
    KubeUnavailableError,
)
from stageflow.kube.metrics import APISERVER_REQUEST_SECONDS, APISERVER_REQUESTS, verb_of


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


def metadata_only() -> dict[str, Any]:
    """The apiserver's metadata-only list: names and versions, not whole objects (a cheap
    list, for checking that a watch keeps up). A new dict per call: the client adds its
    own headers to the one it is given."""
    return {
        "_headers": {"Accept": "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"}
    }


def unread(function: Callable[..., Any]) -> Callable[..., bytes]:
    """`function` answering its raw body, read in the client's thread (which returns the
    connection to the pool), for calls whose answer is not needed as a typed object.
    Non-2xx answers still raise ApiException."""

    def call(*args: Any, **kwargs: Any) -> bytes:
        return bytes(function(*args, _preload_content=False, **kwargs).data)

    call.__name__ = function.__name__  # the verb of the apiserver request metrics
    return call


class ApiCalls:
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
        self._connect(self._api)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="stageflow-kube")
        self._direct = DirectCalls(configuration, connections=threads, timeout=timeout)

    def _connect(self, api: kubernetes.client.ApiClient) -> None:
        """Make the official API objects a resource module calls through; each one that
        overrides this calls `super()._connect(api)`, so the composed client has them all."""

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

    async def _send(
        self,
        stands_for: Callable[..., Any],
        method: str,
        path: str,
        body: Any,
        *,
        content_type: str = "application/json",
    ) -> bytes:
        """The request the official client's `stands_for` would make, sent directly
        (kube/direct.py says why); the answer's raw body. Its errors, metrics and bounds
        are `_call`'s. Naming `stands_for` keeps the RBAC the chart grants derived from
        the code (tests/support/rbac.py), and a test checks that `method` and `path` are
        what the official client sends."""
        verb, code, started = (
            verb_of(getattr(stands_for, "__name__", "")),
            "error",
            time.monotonic(),
        )
        try:
            data = json.dumps(body, separators=(",", ":")).encode()
            status, reason, answer = await self._direct.request(
                method, path, data, content_type=content_type
            )
            code = str(status)
            if status < 300:
                return answer
            text = answer.decode(errors="replace")
            if status == 409:
                raise KubeConflictError(reason, status)
            if status >= 500:
                raise KubeUnavailableError(f"apiserver: {reason}", status)
            raise KubeError(f"apiserver: {status} {reason}: {text}", status)
        finally:
            APISERVER_REQUESTS.labels(verb=verb, code=code).inc()
            APISERVER_REQUEST_SECONDS.labels(verb=verb).observe(time.monotonic() - started)

    async def _maybe(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """`_call`, with None for "not there" (404)."""
        try:
            return await self._call(function, *args, **kwargs)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def _plain(self, obj: Any) -> Any:
        """A typed client model as the plain camelCase dict the API server sent."""
        return self._api.sanitize_for_serialization(obj)  # type: ignore[no-untyped-call]

    async def aclose(self) -> None:
        """Close the direct calls' connections (on the loop they were opened on), then
        the rest."""
        await self._direct.close()
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._api.close()  # type: ignore[no-untyped-call]
