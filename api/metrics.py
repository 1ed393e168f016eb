"""The API's Prometheus metrics at `/metrics`: requests by route and code, latency, runs submitted.

Why a pure ASGI middleware (not Starlette's BaseHTTPMiddleware): it wraps streamed
responses (server-sent events) without buffering them, and costs one dict lookup
per request. The route label is the matched route's *template*
(`/workflow/{run_id}`), never the path, so a run id never becomes a label value;
requests that match no route share `unmatched`. A stream's latency is the length of
the stream.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_REQUESTS = Counter(
    "stageflow_api_requests",
    "HTTP requests to the API by method, route template and status code.",
    ["method", "route", "code"],
)
API_REQUEST_SECONDS = Histogram(
    "stageflow_api_request_duration_seconds",
    "Time to answer an HTTP request, by method and route template.",
    ["method", "route"],
)
RUNS_SUBMITTED = Counter(
    "stageflow_api_runs_submitted", "Workflow runs accepted by POST /workflow."
)


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        code = "500"  # what the server answers when the app raises before it responds
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            method, route = scope["method"], route_template(scope)
            API_REQUESTS.labels(method=method, route=route, code=code).inc()
            API_REQUEST_SECONDS.labels(method=method, route=route).observe(
                time.perf_counter() - started
            )


async def metrics() -> Response:
    """Prometheus text exposition of every stageflow metric of this process."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def install(app: FastAPI) -> None:
    app.add_middleware(MetricsMiddleware)
    app.add_api_route("/metrics", metrics, include_in_schema=False, methods=["GET"])
