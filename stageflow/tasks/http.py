"""`http_get`: a built-in task that talks to an external service, so tests can show how such
a dependency is mocked (with respx, at httpx's transport).

It lives outside the engine, which knows no HTTP client, and is registered through the same
entry-point group as user tasks (`stageflow.tasks`). It connects only where the egress
policy allows (stageflow.tasks.egress) and never repeats a URL's credentials in an error.
"""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from stageflow.engine.registry import task
from stageflow.tasks.egress import EgressError, EgressPolicy, guarded_transport, redact_url


class HttpGetSettings(BaseSettings):
    """Read where the task runs (the API, the operator or a Job's pod)."""

    model_config = SettingsConfigDict(env_prefix="STAGEFLOW_", extra="ignore")

    http_get_max_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, description="The most the http_get task reads."
    )


@task("http_get")
async def http_get(
    url: str, expect_status: int = 200, timeout_seconds: float = 10.0
) -> dict[str, Any]:
    """GET `url`; succeed when the response has `expect_status`. Loopback, link-local and
    this pod's own addresses are refused (STAGEFLOW_HTTP_ALLOW / STAGEFLOW_HTTP_DENY).

    The body is streamed and counted, never held, and reading stops past
    STAGEFLOW_HTTP_GET_MAX_BYTES (a 400 MB answer was once read whole)."""
    shown = redact_url(url)
    limit = HttpGetSettings().http_get_max_bytes  # read where the task runs
    too_large = (
        f"GET {shown}: the response is larger than {limit} bytes (STAGEFLOW_HTTP_GET_MAX_BYTES)"
    )
    transport = guarded_transport(EgressPolicy.from_env())
    size = 0
    try:
        async with (
            httpx.AsyncClient(timeout=timeout_seconds, transport=transport) as client,
            client.stream("GET", url) as response,
        ):
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise RuntimeError(too_large)
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise RuntimeError(too_large)
    except (httpx.HTTPError, EgressError) as error:  # httpx's messages may hold the URL
        raise RuntimeError(f"GET {shown} failed: {type(error).__name__}: {error}") from None
    if response.status_code != expect_status:
        raise RuntimeError(f"GET {shown} returned {response.status_code}, expected {expect_status}")
    return {"status": response.status_code, "bytes": size}
