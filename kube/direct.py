"""The few apiserver calls made for every run and task, sent straight from the event loop.

Why: under load the official client cost the API about 47% and the operator about 29%
of their CPU (a py-spy profile of bench/throughput.py, docs/benchmarks.md). Most of that
was not the request itself but the way to it: a hop to a worker thread and back, the
client's argument validation, urllib3's machinery and a token refresh per call. The
calls made once per run or per task (the API's create, the operator's status patch and
Event) are three fixed requests with JSON bodies, so they go out here over aiohttp
(already in the operator, through kopf) on the caller's own event loop. Every other
call keeps the official client (kube/transport.py), and so does the configuration:
host, TLS files and the bearer token (refreshed as the client refreshes it) are read
from the same `kubernetes.client.Configuration`.

A call answers `(status, body)`; kube/transport.py's `ApiCalls._send` turns a status into
the same errors, metrics and time bounds as the official path.
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import kubernetes.client

from stageflow.kube.errors import KubeUnavailableError
from stageflow.kube.resource import GROUP, PLURAL, VERSION


def _tls(configuration: kubernetes.client.Configuration) -> ssl.SSLContext | bool:
    """The TLS the official client would use: its CA, its client certificate, its checks."""
    if not configuration.host.startswith("https"):
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif configuration.assert_hostname is False:
        context.check_hostname = False
    return context


class DirectCalls:
    """One aiohttp session per event loop it is used from (a session belongs to its loop),
    with as many connections as the official client's pool has threads."""

    def __init__(
        self,
        configuration: kubernetes.client.Configuration,
        *,
        connections: int,
        timeout: tuple[float, float],
    ) -> None:
        self._configuration = configuration
        self._base = configuration.host.rstrip("/")
        self._tls = _tls(configuration)
        self._connections = connections
        connect, read = timeout
        self._timeout = aiohttp.ClientTimeout(sock_connect=connect, sock_read=read)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _session_here(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self._tls, limit=self._connections)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, proxy=self._configuration.proxy
            )
            self._loop = loop
        return self._session

    def _headers(self, content_type: str) -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        # auth_settings() runs the client's refresh hook: an expiring token is renewed here too
        bearer = self._configuration.auth_settings().get("BearerToken")
        if bearer and bearer["value"]:
            headers["Authorization"] = bearer["value"]
        return headers

    async def request(
        self, method: str, path: str, body: bytes, *, content_type: str = "application/json"
    ) -> tuple[int, str, bytes]:
        """(HTTP status, reason, body) of one request; KubeUnavailableError if none came."""
        try:
            async with self._session_here().request(
                method,
                self._base + path,
                data=body,
                headers=self._headers(content_type),
                server_hostname=self._configuration.tls_server_name,
            ) as response:
                return response.status, response.reason or "", await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise KubeUnavailableError(f"apiserver unreachable: {error!r}") from error

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()


def run_path(namespace: str, name: str | None = None, subresource: str | None = None) -> str:
    """The path of WorkflowRuns in `namespace`, of one of them, or of its subresource."""
    path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
    if name is not None:
        path += f"/{name}"
        if subresource is not None:
            path += f"/{subresource}"
    return path


def events_path(namespace: str) -> str:
    """The path of core/v1 Events in `namespace`."""
    return f"/api/v1/namespaces/{namespace}/events"
